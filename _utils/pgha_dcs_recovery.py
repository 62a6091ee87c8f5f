"""
A running cluster brought back onto a new or emptied DCS. When every etcd
member lost its data (a disk, an operator's ``etcdctl del --prefix``), the
orchestration starts a new etcd whose raft term is lower than the one
Patroni last saw: every Patroni rejects it (``StaleEtcdNode``) and runs on
failsafe for ever, no failover possible, and the cluster's keys are gone.

Recognised here from what the hosts say, not from what is missing: the
PostgreSQL nodes' REST APIs answer (``GET /patroni``: running, with data)
while etcd holds none of the cluster's Patroni keys. Recovered in an order
that never lets two nodes run as primary: etcd's access control first (no
anonymous client once the new etcd is the cluster's), then Patroni restarted
on the one node that was leading (it keeps its data and takes the leader
key in the new etcd, on a new timeline), waited for, then on the others,
each rejoining as a replica; the cluster checked healthy and its system
identifier unchanged. When it cannot tell which node was leading (none, or
more than one, reports itself primary) it refuses and touches nothing.

It acts through the cluster as the runner reaches it (``pgha_reach.Reach``),
reading etcd's keys as etcd's root. Plain Python; reached as
``__utils__["pgha_dcs_recovery.<function>"]``.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from salt.exceptions import CommandExecutionError

PRIMARY_ROLES = ("primary", "master")
# The keys Patroni keeps under the cluster's prefix (the lock's is not one of them).
PATRONI_KEYS = ("initialize", "config", "leader", "history", "sync", "status", "failsafe", "failover")


def _end(prefix: str) -> str:
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


def dcs_keys(etcd: Any, prefix: str) -> list[str]:
    """The names (under ``prefix``) of the keys etcd holds there: ``initialize``, ``members/postgres01``, ..."""
    answer = etcd.post("/v3/kv/range", {"key": base64.b64encode(prefix.encode()).decode(), "range_end": _end(prefix),
                                        "keys_only": True})
    return sorted(base64.b64decode(kv["key"]).decode()[len(prefix):] for kv in answer.get("kvs") or [])


def patroni_facts(reach: Any) -> dict[str, dict | None]:
    """Each PostgreSQL node's own view (``GET /patroni``), None where its REST API does not answer."""
    found: dict[str, dict | None] = {}
    for name in reach.cluster.pg_nodes:
        try:
            answer = reach.api.call(name, "/patroni", ok=(200, 503))
        except CommandExecutionError:
            answer = None
        found[name] = answer if isinstance(answer, dict) else None
    return found


def recognise(facts: dict[str, dict | None], keys: list[str]) -> dict:
    """
    Whether a running cluster lost its DCS, and which node was leading:
    ``lost`` (bool), ``leader`` (None when it cannot tell), ``running``
    (the nodes whose Patroni answers), ``why``.
    """
    running = sorted(name for name, answer in facts.items() if answer and answer.get("state") == "running")
    patroni_keys = [k for k in keys if k in PATRONI_KEYS or k.startswith("members/")]
    if not running:
        return {"lost": False, "leader": None, "running": [], "why": "no Patroni runs PostgreSQL: a stopped or new "
                "cluster (the stages that follow start it)"}
    if patroni_keys:
        return {"lost": False, "leader": None, "running": running,
                "why": f"etcd holds the cluster's keys ({', '.join(patroni_keys[:4])}{', ...' if len(patroni_keys) > 4 else ''})"}
    primaries = [name for name in running if facts[name].get("role") in PRIMARY_ROLES]
    roles = ", ".join(f"{name}={facts[name].get('role')}/tl{facts[name].get('timeline')}" for name in running)
    if len(primaries) != 1:
        return {"lost": True, "leader": None, "running": running,
                "why": f"etcd holds none of the cluster's keys while Patroni runs on {', '.join(running)}, and "
                       f"{'no node' if not primaries else 'more than one node'} reports itself primary ({roles}): "
                       "cannot tell which node was leading"}
    return {"lost": True, "leader": primaries[0], "running": running,
            "why": f"etcd holds none of the cluster's keys while Patroni runs on {', '.join(running)}; "
                   f"{primaries[0]} was leading ({roles})"}


def run(reach: Any, timeout: float) -> dict:
    """
    Recognise a lost DCS and bring the running cluster back onto etcd.
    Returns ok, recovered (bool), leader, steps, comment; nothing is touched
    unless a DCS was lost and the node that was leading is known.
    """
    cluster = reach.cluster
    facts = patroni_facts(reach)
    try:
        keys = dcs_keys(reach.etcd("root"), cluster.etcd.prefix)
    except CommandExecutionError as exc:
        return {"ok": False, "recovered": False, "steps": [], "comment": f"cannot read etcd's keys: {exc}"}
    seen = recognise(facts, keys)
    result: dict = {"ok": True, "recovered": False, "leader": seen["leader"], "steps": [], "comment": seen["why"]}
    if not seen["lost"]:
        return result
    if not seen["leader"]:
        return dict(result, ok=False, comment=seen["why"] + "; nothing was touched: start Patroni on the node that "
                                                           "led by hand (salt <node> pgha_service.restart patroni)")
    leader, steps = seen["leader"], result["steps"]
    system_id = facts[leader].get("database_system_identifier")
    started = time.monotonic()
    try:
        if cluster.etcd.auth:
            reach.apply(cluster.etcd_nodes[0], "pgha.etcd.auth", wait=int(timeout) + 60)
            steps.append(f"etcd's access control applied through {cluster.etcd_nodes[0]}")
        reach.call(leader, "pgha_service.restart", "patroni", wait=int(timeout))
        reach.call(leader, "patroni.wait_leader", member=leader, timeout=int(timeout), wait=int(timeout) + 60)
        steps.append(f"patroni restarted on {leader}: it leads in the new etcd")
        for name in seen["running"]:
            if name != leader:
                reach.call(name, "pgha_service.restart", "patroni", wait=int(timeout))
                steps.append(f"patroni restarted on {name}")
        healthy = reach.call(leader, "patroni.wait_healthy", members=len(seen["running"]),
                             max_lag=cluster.gates.max_lag_bytes, timeout=int(timeout), wait=int(timeout) + 60)
        steps.append(f"healthy: {healthy.get('leader')} leads on timeline {healthy.get('timeline')}, "
                     f"{len(seen['running']) - 1} replica(s) streaming")
        after = reach.api.call(leader, "/patroni", ok=(200, 503)).get("database_system_identifier")
    except CommandExecutionError as exc:
        return dict(result, ok=False, comment=f"recovering from the lost DCS ({seen['why']}): {exc}")
    if after != system_id:
        return dict(result, ok=False, comment=f"the system identifier changed: {system_id} before, {after} after")
    return dict(result, recovered=True, system_identifier=after, recover_s=round(time.monotonic() - started, 3),
                comment=f"the DCS was lost: {seen['why']}; recovered onto the new etcd, {leader} leading")
