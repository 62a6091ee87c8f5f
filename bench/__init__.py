"""The pgha benchmark on the lab (`make bench`, or `python -m bench`); see bench/__main__.py."""

from __future__ import annotations

import json
import statistics


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


def cell(values: list) -> str:
    """A table cell of the benchmark's reports: median (min-max) of the values given, "-" without any."""
    values = [value for value in values if value is not None]
    if not values:
        return "-"
    return f"{round(statistics.median(values), 3)} ({round(min(values), 3)}-{round(max(values), 3)})"
