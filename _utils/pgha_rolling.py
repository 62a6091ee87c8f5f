"""
Rolling operations on a pgha cluster: restart or reload its members one at a
time, replicas first, each followed by a health gate, the leader last after
a switchover moves the leadership away. It acts through the cluster as the
runner reaches it (``pgha_reach.Reach``): each member's own minion restarts
or reloads it. Plain Python; reached as ``__utils__["pgha_rolling.<function>"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

GATE_POLL = 1.0


def act(reach: Any, name: str, action: str, what: str, pending_only: bool, timeout: float) -> Any:
    """One member restarted or reloaded through its minion: Patroni's reload or restart, or its service."""
    if action == "reload":
        return reach.call(name, "patroni.reload", wait=int(timeout))
    if what == "patroni":
        return reach.call(name, "pgha_service.restart", "patroni", wait=int(timeout))
    return reach.call(name, "patroni.restart", pending_only=pending_only, timeout=int(timeout), wait=int(timeout) + 60)


def gate(reach: Any, timeout: float) -> list[str]:
    """Wait, at most ``timeout`` seconds, for a healthy cluster; the problems left (none: healthy)."""
    expected, max_lag = len(reach.cluster.pg_nodes), reach.cluster.patroni.maximum_lag_on_failover
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(GATE_POLL)
        problems = reach.rules.health_problems(reach.members(), expected, max_lag)
        if not problems or time.monotonic() >= deadline:
            return problems


def run(reach: Any, action: str, switchover: Callable[[], dict], timeout: float, what: str = "postgresql",
        pending_only: bool = False, only: set | None = None) -> dict:
    """
    ``action`` (restart or reload; ``what``: postgresql through Patroni, or
    the Patroni service) on each member, replicas first, the leader last
    after ``switchover()`` (a drill's report) when ``action`` would
    interrupt it (restart); ``only`` limits it to those members. Nothing is
    touched unless the cluster is healthy first; the first failed step stops
    the run. Returns ok, done (members acted on), steps and a comment when
    not ok.
    """
    members = reach.members()
    leader = reach.rules.leader_of(members)
    problems = reach.rules.health_problems(members, len(reach.cluster.pg_nodes),
                                           reach.cluster.patroni.maximum_lag_on_failover)
    if not leader or problems:
        return {"ok": False, "done": [], "steps": [], "comment": f"the cluster is not healthy, nothing was touched: {problems}"}
    done: list[str] = []
    log: list[dict] = []
    order = [m["name"] for m in members if m is not leader] + [leader["name"]]
    for name in [n for n in order if only is None or n in only]:
        if name == leader["name"] and action == "restart":
            moved = switchover()
            log.append({"switchover": {k: moved.get(k) for k in ("old_leader", "new_leader", "rto_s", "lost", "ok")}})
            if not moved.get("ok"):
                return {"ok": False, "done": done, "steps": log,
                        "comment": f"the switchover before the {action} of {name} failed: {moved.get('problems')}"}
        try:
            act(reach, name, action, what, pending_only, timeout)
        except CommandExecutionError as exc:
            return {"ok": False, "done": done, "steps": log, "comment": f"the {action} of {name} failed: {exc}"}
        left = gate(reach, timeout)
        if left:
            return {"ok": False, "done": done, "steps": log, "comment": f"after the {action} of {name}: {left}"}
        done.append(name)
        log.append({action: name})
    return {"ok": True, "done": done, "steps": log}
