"""The pgha benchmark on the lab (`make bench`, or `python -m bench`); see bench/__main__.py."""

from __future__ import annotations

import json


def failover_drill(salt, *args: str, timeout: int = 1200):
    """
    ``salt-run pgha.failover_drill <args> --out=json`` through ``salt`` (bench/__main__.py's): its report, or
    a failed one holding the end of its output; and the exit code.
    """
    ret = salt("salt-run", "pgha.failover_drill", *args, "--out=json", timeout=timeout)
    try:
        drill = json.loads(ret.stdout)
    except ValueError:
        drill = {"ok": False, "problems": [ret.stdout[-500:] + ret.stderr[-500:]]}
    return drill, ret.returncode
