"""
Checks of the arguments operators give pgha's commands on the command line
(``salt-run pgha.* key=value``): each returns the value to use or raises
``ValueError`` with one line naming the argument and the problem, before
anything is touched. Plain Python; reached as
``__utils__["pgha_args.<function>"]``.
"""

from __future__ import annotations

from typing import Any

MAX_SECONDS = 3600


def seconds(value: Any, name: str, minimum: float = 1, maximum: float = MAX_SECONDS) -> float:
    """A number of seconds within [minimum, maximum]."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds (got {value!r})") from None
    if not minimum <= number <= maximum:
        raise ValueError(f"{name} must be between {minimum:g} and {maximum:g} seconds (got {value!r})")
    return number


def flag(value: Any, name: str) -> bool:
    """true or false (as Salt's command line gives them, or as text)."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"{name} must be true or false (got {value!r})")


def count(value: Any, name: str, minimum: int = 0) -> int:
    """A whole number, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number, {minimum} or more (got {value!r})")
    return value


def choice(value: Any, name: str, choices: list | tuple, optional: bool = False) -> Any:
    """One of ``choices`` (None allowed when ``optional``)."""
    if value is None and optional:
        return None
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))} (got {value!r})")
    return value


def drill_options(given: dict, cluster: Any) -> dict:
    """
    The failover drill's settings: those ``given`` on the command line
    (None: not given), else the cluster's (``pgha_model.Cluster.drill``:
    pillar's, with its derived defaults), each checked; ``path=pooler``
    only with PgBouncer.
    """
    path = choice(given.get("path") or "leader", "path", ("leader", "pooler"))
    if path == "pooler" and not cluster.pooler.enabled:
        raise ValueError("path=pooler needs PgBouncer (pgha:pgbouncer:enabled)")

    def pick(key: str) -> Any:
        return given[key] if given.get(key) is not None else getattr(cluster.drill, key)

    return {
        "timeout": seconds(pick("timeout"), "timeout", minimum=10),
        "report": flag(given.get("report", True), "report"),
        "candidate": choice(given.get("candidate"), "candidate", cluster.pg_nodes, optional=True),
        "member": choice(given.get("member"), "member", cluster.etcd_nodes, optional=True),
        "freeze_s": seconds(pick("freeze_s"), "freeze_s"),
        "outage_s": seconds(pick("outage_s"), "outage_s"),
        "partition_s": seconds(pick("partition_s"), "partition_s"),
        "path": path,
    }
