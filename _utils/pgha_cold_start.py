"""
A stopped cluster started again. Patroni lets only a member that cannot
have missed an acknowledged write take the leader's lock after the whole
cluster stopped: the last leader, or its synchronous standby. The
orchestration starts a new cluster's bootstrap leader alone and waits for
it to lead; on a stopped cluster that node may have been an asynchronous
replica, and it would wait for a leader that never starts. So, when no
member leads, every PostgreSQL node of pillar that holds the cluster's data
and whose Patroni does not run is started first (as its host's boot would
start it), and a leader is awaited among them; the stages that follow find
it leading.

A running cluster (a member leads) and a new one (no node holds data) are
left to the stages that follow. The runner hands in what to act with
(``Acts``); this module only decides and orders. Plain Python; reached as
``__utils__["pgha_cold_start.<function>"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError


class Acts:
    """
    ``members()``, Patroni's members that answer ([] when none does);
    ``local(name)``, that host's data (``initialized``); ``start(name)``,
    the PostgreSQL states on that host (Patroni started);
    ``wait_leader(name)``, wait on that host until a member leads (its
    answer names the leader); ``leader_of(members)``, the one running
    leader among them or None (pgha_cluster's rule).
    """

    def __init__(self, **fields: Callable[..., Any]):
        for name in ("members", "local", "start", "wait_leader", "leader_of"):
            setattr(self, name, fields[name])


def acts(**fields: Any) -> Acts:
    """The cold start's ``Acts`` (see its fields)."""
    return Acts(**fields)


def run(acts: Acts, nodes: list[str]) -> dict:
    """
    Start a stopped cluster's members (``nodes``: pillar's PostgreSQL
    nodes), one after the other with no wait for a leader in between, then
    wait for one. Returns ok, started, leader, comment; the first failed
    step stops the run.
    """
    result: dict = {"ok": True, "started": [], "leader": None}
    try:
        members = acts.members()
        lead = acts.leader_of(members)
        if lead:
            leader = lead["name"]
            return dict(result, leader=leader, comment=f"{leader} leads: nothing to start")
        running = {m["name"] for m in members}
        stopped = [name for name in nodes if name not in running]
        holding = [name for name in stopped if acts.local(name)["initialized"]]
        if not holding:
            what = ("no PostgreSQL node holds data: a new cluster, started by the stages that follow" if not running
                    else f"no member leads; running: {', '.join(sorted(running))}; no stopped node holds data")
            return dict(result, comment=what)
        for name in holding:
            acts.start(name)
            result["started"].append(name)
        answer = acts.wait_leader(holding[0])
        result["leader"] = answer.get("leader") if isinstance(answer, dict) else None
    except CommandExecutionError as exc:
        text, done = str(exc), f" (started: {', '.join(result['started'])})" if result["started"] else ""
        return dict(result, ok=False, comment=f"{text if len(text) <= 1500 else text[:1500] + ' ...'}{done}")
    return dict(result, comment=f"no member led: started {', '.join(result['started'])}; "
                                f"{result['leader']} leads")
