"""
Scaling in: the Patroni members that pillar no longer lists as PostgreSQL
nodes ("departing") leave the cluster one at a time. For each: the
leadership moves away first (a switchover to a node that stays), HAProxy
stops sending it new connections (drain), its Patroni is stopped and kept
from starting again (PostgreSQL shuts down cleanly with it), and the run
waits until the member has left Patroni's member list (its key expires
within the DCS ttl). Its data directory is kept unless ``purge`` is given.
It acts through the cluster as the runner reaches it (``pgha_reach.Reach``);
the switchover is the runner's drill, handed in. Plain Python; reached as
``__utils__["pgha_retire.<function>"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

POLL = 1.0
STAYING_ROLES = ("sync_standby", "quorum_standby", "replica")


def _drain(reach: Any, name: str) -> list[str]:
    """HAProxy stops sending ``name`` new connections, on every HAProxy node."""
    done = []
    for node in reach.cluster.haproxy_nodes:
        try:
            reach.call(node, "pgha_haproxy.drain", name, wait=60)
            done.append(f"HAProxy on {node} drains {name}")
        except CommandExecutionError as exc:  # a node HAProxy never listed has nothing to drain
            done.append(f"HAProxy on {node} did not drain {name}: {exc}")
    return done


def _purge(reach: Any, name: str) -> str:
    """The departed member's data directory removed through its own minion; where it was."""
    path = reach.call(name, "pgha_config.mapdata", wait=60)["lookup"]["patroni"]["data_dir"]
    reach.call(name, "file.remove", path, wait=300)
    return f"{name}:{path}"


def departing(members: list[dict], staying: list[str]) -> list[str]:
    """The members pillar does not list as PostgreSQL nodes, by name."""
    return sorted(m["name"] for m in members if m["name"] not in staying)


def candidate(members: list[dict], staying: list[str]) -> str | None:
    """The node that takes the leadership: a synchronous standby that stays, else the staying replica least behind."""
    running = [m for m in members if m["name"] in staying and m["state"] in ("running", "streaming")]
    for role in STAYING_ROLES:
        found = sorted((m for m in running if m["role"] == role), key=lambda m: (m["lag"] is None, m["lag"] or 0, m["name"]))
        if found:
            return found[0]["name"]
    return None


def run(reach: Any, switchover: Callable[[Any, str | None], dict], timeout: float, purge: bool = False) -> dict:
    """
    Retire every departing member, one at a time; the first failed step
    stops the run (what was done is reported). Nothing is touched when no
    node that stays is running. ``switchover(reach, candidate)`` moves the
    leadership (a drill's report). Returns ok, retired, kept_data or purged,
    steps, and a comment when not ok.
    """
    members = reach.members()
    staying = list(reach.cluster.pg_nodes)
    leaving = departing(members, staying)
    result: dict = {"ok": True, "retired": [], "steps": [], "departing": leaving,
                    "purged" if purge else "kept_data": []}
    if not leaving:
        result["comment"] = "no member to retire: every Patroni member is a PostgreSQL node in pillar"
        return result
    if not candidate(members, staying):
        return dict(result, ok=False, comment=f"no PostgreSQL node that stays is running; nothing was touched "
                                              f"(departing: {', '.join(leaving)})")
    for name in leaving:
        problem = _retire_one(reach, switchover, timeout, name, purge, result)
        if problem:
            return dict(result, ok=False, comment=f"retiring {name}: {problem}")
        result["retired"].append(name)
    return result


def _retire_one(reach: Any, switchover: Callable[[Any, str | None], dict], timeout: float, name: str, purge: bool,
                result: dict) -> str | None:
    """One member out of the cluster; the problem that stopped it, or None."""
    steps = result["steps"]
    members = reach.members()
    member = next((m for m in members if m["name"] == name), None)
    if member and member["role"] == "leader":
        target = candidate(members, list(reach.cluster.pg_nodes))
        # the drill's gates count every member there is until it has left
        moved = switchover(reach.with_cluster(reach.cluster.with_members(members)), target)
        steps.append(f"switchover {name} -> {moved.get('new_leader')} (rto {moved.get('rto_s')} s, lost {moved.get('lost')})")
        if not moved.get("ok"):
            return f"the switchover away from it failed: {moved.get('problems')}"
    try:
        steps.extend(_drain(reach, name))
        reach.call(name, "pgha_service.disable", "patroni", wait=int(timeout) + 60)
        steps.append(f"patroni stopped and disabled on {name}")
    except CommandExecutionError as exc:
        return str(exc)
    if not _wait_gone(reach, name, timeout):
        return f"still in Patroni's member list {timeout:.0f} s after its Patroni stopped"
    steps.append(f"{name} left Patroni's member list")
    if purge:
        try:
            result["purged"].append(_purge(reach, name))
        except CommandExecutionError as exc:
            return f"removing its data failed: {exc}"
        steps.append(f"data of {name} removed ({result['purged'][-1]})")
    else:
        result["kept_data"].append(name)
    return None


def _wait_gone(reach: Any, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = reach.members()
        if members and all(m["name"] != name for m in members):
            return True
        time.sleep(POLL)
    return False
