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
left to the stages that follow. It acts through the cluster as the runner
reaches it (``pgha_reach.Reach``). Plain Python; reached as
``__utils__["pgha_cold_start.<function>"]``.
"""

from __future__ import annotations

from typing import Any

from salt.exceptions import CommandExecutionError


def run(reach: Any, timeout: float) -> dict:
    """
    Start a stopped cluster's members (pillar's PostgreSQL nodes that hold
    its data), one after the other with no wait for a leader in between,
    then wait for one. Returns ok, started, leader, comment; the first
    failed step stops the run.
    """
    result: dict = {"ok": True, "started": [], "leader": None}
    try:
        members = reach.members()
        lead = reach.rules.leader_of(members)
        if lead:
            return dict(result, leader=lead["name"], comment=f"{lead['name']} leads: nothing to start")
        running = {m["name"] for m in members}
        stopped = [name for name in reach.cluster.pg_nodes if name not in running]
        holding = [name for name in stopped if reach.call(name, "patroni.local")["initialized"]]
        if not holding:
            what = ("no PostgreSQL node holds data: a new cluster, started by the stages that follow" if not running
                    else f"no member leads; running: {', '.join(sorted(running))}; no stopped node holds data")
            return dict(result, comment=what)
        for name in holding:
            reach.apply(name, "pgha.postgresql", wait=int(timeout) + 240)
            result["started"].append(name)
        answer = reach.call(holding[0], "patroni.wait_leader", timeout=int(timeout), wait=int(timeout) + 60)
        result["leader"] = answer.get("leader") if isinstance(answer, dict) else None
    except CommandExecutionError as exc:
        done = f" (started: {', '.join(result['started'])})" if result["started"] else ""
        return dict(result, ok=False, comment=f"{exc}{done}")
    return dict(result, comment=f"no member led: started {', '.join(result['started'])}; {result['leader']} leads")
