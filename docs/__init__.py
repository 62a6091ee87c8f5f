"""
pgha's manual: the hand-written pages under docs/ and the generated ones.

`make docs` (``python -m docs``) writes the generated files from their one
source each (see ``docs/generate.py``): docs/reference/pillar.md and
pillar.example from salt/pgha/parameters/defaults.yaml and its comments,
docs/reference/commands.md from the runner's docstrings, and
docs/reference/modules.md from the execution and state modules' docstrings.
"""
