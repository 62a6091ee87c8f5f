"""
Rolling operations on a pgha cluster: restart or reload its members one at a
time, replicas first, each followed by a health gate, the leader last after
a switchover moves the leadership away. The runner hands in what to do each
step with (``Steps``); this module only orders and gates them. Plain Python;
reached as ``__utils__["pgha_rolling.<function>"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

GATE_POLL = 1.0


class Steps:
    """
    What a rolling operation acts and gates with: ``members``, the members
    with their health facts; ``rules``, leader_of and health_problems
    (pgha_cluster.rules()); ``expected``, how many members the cluster has;
    ``max_lag``, the lag bound of a healthy member between steps (bytes);
    ``act``, act on one member (restart or reload it); ``switchover``, move
    the leadership away (a drill report: ok, problems, ...); ``timeout``,
    the bound of each health gate (seconds). A plain class: see
    pgha_drill.Context.
    """

    def __init__(self, members: Callable[[], list[dict]], rules: Any, expected: int, max_lag: int,
                 act: Callable[[str], Any], switchover: Callable[[], dict], timeout: float):
        self.members, self.rules, self.expected, self.max_lag = members, rules, expected, max_lag
        self.act, self.switchover, self.timeout = act, switchover, timeout


def steps(**fields: Any) -> Steps:
    """A rolling operation's ``Steps`` (see its fields)."""
    return Steps(**fields)


def gate(steps: Steps) -> list[str]:
    """Wait, at most ``steps.timeout`` seconds, for a healthy cluster; the problems left (none: healthy)."""
    deadline = time.monotonic() + steps.timeout
    while True:
        time.sleep(GATE_POLL)
        problems = steps.rules.health_problems(steps.members(), steps.expected, steps.max_lag)
        if not problems or time.monotonic() >= deadline:
            return problems


def run(steps: Steps, action: str, only: set | None = None) -> dict:
    """
    ``action`` (a word for the report: restart, reload) on each member,
    replicas first, the leader last after a switchover when ``action`` would
    interrupt it (restart); ``only`` limits it to those members. Nothing is
    touched unless the cluster is healthy first; the first failed step stops
    the run. Returns ok, done (members acted on), steps and a comment when
    not ok.
    """
    members = steps.members()
    leader = steps.rules.leader_of(members)
    problems = steps.rules.health_problems(members, steps.expected, steps.max_lag)
    if not leader or problems:
        return {"ok": False, "done": [], "steps": [], "comment": f"the cluster is not healthy, nothing was touched: {problems}"}
    done: list[str] = []
    log: list[dict] = []
    order = [m["name"] for m in members if m is not leader] + [leader["name"]]
    for name in [n for n in order if only is None or n in only]:
        if name == leader["name"] and action == "restart":
            moved = steps.switchover()
            log.append({"switchover": {k: moved.get(k) for k in ("old_leader", "new_leader", "rto_s", "lost", "ok")}})
            if not moved.get("ok"):
                return {"ok": False, "done": done, "steps": log,
                        "comment": f"the switchover before the {action} of {name} failed: {moved.get('problems')}"}
        try:
            steps.act(name)
        except CommandExecutionError as exc:
            return {"ok": False, "done": done, "steps": log, "comment": f"the {action} of {name} failed: {exc}"}
        left = gate(steps)
        if left:
            return {"ok": False, "done": done, "steps": log, "comment": f"after the {action} of {name}: {left}"}
        done.append(name)
        log.append({action: name})
    return {"ok": True, "done": done, "steps": log}
