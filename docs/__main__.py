"""python -m docs [--out DIR]: write the manual's generated files (see docs/generate.py); `make docs` runs it."""

from __future__ import annotations

import argparse
import sys

from docs import generate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs", description=__doc__)
    parser.add_argument("--out", default=generate.REPO,
                        help="the directory to write under (default: the repository's root)")
    options = parser.parse_args(argv[1:])
    for path in generate.write(options.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
