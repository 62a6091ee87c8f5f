"""
Scaling in: the Patroni members that pillar no longer lists as PostgreSQL
nodes ("departing") leave the cluster one at a time. For each: the
leadership moves away first (a switchover to a node that stays), HAProxy
stops sending it new connections (drain), its Patroni is stopped and kept
from starting again (PostgreSQL shuts down cleanly with it), and the run
waits until the member has left Patroni's member list (its key expires
within the DCS ttl). Its data directory is kept unless ``purge`` is given.
The runner hands in what to act with (``Acts``); this module only orders
and gates. Plain Python; reached as ``__utils__["pgha_retire.<function>"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

POLL = 1.0
STAYING_ROLES = ("sync_standby", "quorum_standby", "replica")


class Acts:
    """
    What scaling in acts with: ``members``, the members with their health
    facts (pgha_cluster); ``staying``, the PostgreSQL nodes pillar lists;
    ``switchover(departing, candidate)``, move the leadership (a drill
    report: ok, problems, ...); ``drain(name)``, HAProxy's drain of that
    server (a list of what was done); ``disable(name)``, stop its Patroni
    for good; ``purge(name)``, remove its data directory (the path);
    ``timeout``, the bound of each wait (seconds).
    """

    def __init__(self, members: Callable[[], list[dict]], staying: list[str], switchover: Callable[[str, str], dict],
                 drain: Callable[[str], list[str]], disable: Callable[[str], Any], purge: Callable[[str], str],
                 timeout: float):
        self.members, self.staying, self.switchover, self.drain = members, list(staying), switchover, drain
        self.disable, self.purge, self.timeout = disable, purge, timeout


def acts(**fields: Any) -> Acts:
    """Scaling in's ``Acts`` (see its fields)."""
    return Acts(**fields)


def scoped(topo: dict, members: list[dict]) -> dict:
    """
    The cluster's model for a switchover while members are leaving: the
    drill's gates count every member there is until it has left, not only
    pillar's, each with the address Patroni has for it.
    """
    model = dict(topo, pg_nodes=[], nodes=dict(topo["nodes"]))
    rescope(model, topo, members)
    return model


def rescope(model: dict, topo: dict, members: list[dict]) -> None:
    model["pg_nodes"][:] = sorted({m["name"] for m in members} | set(topo["pg_nodes"]))
    for member in members:
        model["nodes"].setdefault(member["name"], {"address": member["host"], "roles": ["postgresql"]})


def acts_through(call: Callable[..., Any], members: Callable[[], list[dict]], topo: dict, model: dict, options: dict,
                 drill: Callable[[], dict], timeout: float) -> Acts:
    """
    ``Acts`` through the runner's ``call`` (one function on one minion):
    the switchover is ``drill`` (the drill's switchover over ``model``,
    its candidate set through ``options``), the drain HAProxy's on every
    HAProxy node, Patroni disabled and the data removed through the
    departing host's own minion.
    """
    def switchover(name: str, target: str | None) -> dict:
        rescope(model, topo, members())
        options["candidate"] = target
        return drill()

    def drain(name: str) -> list[str]:
        done = []
        for node in topo["haproxy_nodes"]:
            try:
                call(node, "pgha_haproxy.drain", name, wait=60)
                done.append(f"HAProxy on {node} drains {name}")
            except CommandExecutionError as exc:  # a node HAProxy never listed has nothing to drain
                done.append(f"HAProxy on {node} did not drain {name}: {exc}")
        return done

    def purge(name: str) -> str:
        path = call(name, "pgha_config.mapdata", wait=60)["lookup"]["patroni"]["data_dir"]
        call(name, "file.remove", path, wait=300)
        return f"{name}:{path}"

    return Acts(members=members, staying=topo["pg_nodes"], switchover=switchover, drain=drain,
                disable=lambda name: call(name, "pgha_service.disable", "patroni", wait=int(timeout) + 60),
                purge=purge, timeout=timeout)


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


def run(acts: Acts, purge: bool = False) -> dict:
    """
    Retire every departing member, one at a time; the first failed step
    stops the run (what was done is reported). Nothing is touched when no
    node that stays is running. Returns ok, retired, kept_data or purged,
    steps, and a comment when not ok.
    """
    members = acts.members()
    leaving = departing(members, acts.staying)
    result: dict = {"ok": True, "retired": [], "steps": [], "departing": leaving,
                    "purged" if purge else "kept_data": []}
    if not leaving:
        result["comment"] = "no member to retire: every Patroni member is a PostgreSQL node in pillar"
        return result
    if not candidate(members, acts.staying):
        return dict(result, ok=False, comment=f"no PostgreSQL node that stays is running; nothing was touched "
                                              f"(departing: {', '.join(leaving)})")
    for name in leaving:
        problem = _retire_one(acts, name, purge, result)
        if problem:
            return dict(result, ok=False, comment=f"retiring {name}: {problem}")
        result["retired"].append(name)
    return result


def _retire_one(acts: Acts, name: str, purge: bool, result: dict) -> str | None:
    """One member out of the cluster; the problem that stopped it, or None."""
    steps = result["steps"]
    members = acts.members()
    member = next((m for m in members if m["name"] == name), None)
    if member and member["role"] == "leader":
        target = candidate(members, acts.staying)
        moved = acts.switchover(name, target)
        steps.append(f"switchover {name} -> {moved.get('new_leader')} (rto {moved.get('rto_s')} s, lost {moved.get('lost')})")
        if not moved.get("ok"):
            return f"the switchover away from it failed: {moved.get('problems')}"
    try:
        steps.extend(acts.drain(name))
        acts.disable(name)
        steps.append(f"patroni stopped and disabled on {name}")
    except CommandExecutionError as exc:
        return str(exc)
    if not _wait_gone(acts, name):
        return f"still in Patroni's member list {acts.timeout:.0f} s after its Patroni stopped"
    steps.append(f"{name} left Patroni's member list")
    if purge:
        try:
            result["purged"].append(acts.purge(name))
        except CommandExecutionError as exc:
            return f"removing its data failed: {exc}"
        steps.append(f"data of {name} removed ({result['purged'][-1]})")
    else:
        result["kept_data"].append(name)
    return None


def _wait_gone(acts: Acts, name: str) -> bool:
    deadline = time.monotonic() + acts.timeout
    while time.monotonic() < deadline:
        members = acts.members()
        if members and all(m["name"] != name for m in members):
            return True
        time.sleep(POLL)
    return False
