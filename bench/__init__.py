"""The pgha benchmark on the lab (`make bench`, or `python -m bench`); see bench/__main__.py."""
