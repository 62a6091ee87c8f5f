"""
etcd's membership follows pillar: etcd nodes pillar adds join the running
cluster and members pillar no longer lists leave it, one member at a time,
the cluster's health checked after each step. Joins come first, so that
replacing a member never shrinks the cluster below its size.

Joining: the member is added (``etcd_cluster.member_present`` on a member that stays),
then its etcd is configured and started with the cluster as it is now
(``initial_cluster``) and ``initial_cluster_state: existing``, then every
member of pillar that is in the cluster must answer and agree on a leader.
A host that still holds etcd data is refused before anything changes.

Leaving: the member is removed (``etcd_cluster.member_absent``), its etcd stopped and
kept from starting, its data directory moved aside (kept) or deleted with
``purge``; then the members that stay must be healthy.

A new cluster (no etcd node holds data) is left to the orchestration's
etcd stage, which starts every member with ``initial_cluster_state: new``.
A cluster that does not answer (its hosts just started, say) is started on
the nodes that hold its data before anything joins it.
It acts through the cluster as the runner reaches it (``pgha_reach.Reach``):
the cluster read through the first of pillar's etcd nodes that answers, each
change an ``etcd_cluster`` state (``member_present``, ``member_absent``)
applied on a member that stays, each host's own part on its own minion.
Plain Python; reached as ``__utils__["pgha_etcd_members.<function>"]``.
"""

from __future__ import annotations

import time
from typing import Any

from salt.exceptions import CommandExecutionError

POLL = 1.0
# etcd refuses a change of members until every member has been connected for
# 5 s (its strict reconfiguration check), e.g. right after a member joined.
BUSY = "unhealthy cluster"


class _Etcd:
    """etcd's membership as the runner reaches it: ``reach``, ``wanted`` (name -> peer URL), the bound of each wait."""

    def __init__(self, reach: Any, timeout: float):
        self.reach, self.timeout = reach, timeout
        self.wanted = dict(reach.cluster.etcd.peer_urls)
        self.wait = int(timeout) + 60

    def members(self) -> list[dict]:
        """The cluster's members, read through the first etcd node that answers (an error when none does)."""
        problems = []
        for via in sorted(self.wanted):
            try:
                return self.reach.call(via, "etcd_cluster.members", wait=60)
            except CommandExecutionError as exc:
                problems.append(str(exc))
        raise CommandExecutionError("; ".join(problems))

    def local(self, name: str) -> dict:
        """That host's etcd files (``bootstrapped``, ``data_dir``)."""
        return self.reach.call(name, "etcd_cluster.local", wait=60)

    def start(self, name: str, initial_cluster: str | None) -> Any:
        """etcd's states on a host: joining with the cluster as it is, or (None) a member with its own data."""
        joining = None if initial_cluster is None else {"pgha": {"etcd": {
            "initial_cluster": initial_cluster, "initial_cluster_state": "existing"}}}
        return self.reach.apply(name, "pgha.etcd", wait=self.wait + 240, pillar=joining)

    def healthy(self, via: str, names: list[str]) -> Any:
        return self.reach.call(via, "etcd_cluster.wait_healthy", timeout=int(self.timeout), names=",".join(names),
                               wait=self.wait)

    def change(self, state: str, via: str, name: str, **kwargs: Any) -> Any:
        """A membership state applied on a member that stays, tried again while etcd is not ready for it."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self.reach.call(via, "state.single", f"etcd_cluster.{state}", name, wait=60, **kwargs)
            except CommandExecutionError as exc:
                if BUSY not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(POLL)

    def retire(self, name: str, purge: bool) -> dict:
        return self.reach.call(name, "etcd_cluster.retire_local", purge=purge, wait=self.wait)


def plan(wanted: dict[str, str], members: list[dict]) -> tuple[list[str], list[dict]]:
    """
    Who joins and who leaves: ``wanted`` is pillar's etcd nodes (name ->
    peer URL). A node joins unless a started member has its name (one
    added but never started has no name yet: it is started, not added
    again); a member leaves when pillar lists neither its name nor its peer
    URLs.
    """
    names = {m["name"] for m in members if m["name"]}
    joining = [name for name in sorted(wanted) if name not in names]
    leaving = [m for m in members
               if m["name"] not in wanted and not any(url in wanted.values() for url in m["peer_urls"])]
    return joining, sorted(leaving, key=lambda m: m["name"] or m["id"])


def initial_cluster(members: list[dict], wanted: dict[str, str]) -> str:
    """
    etcd's ``initial_cluster`` for a member starting into the cluster as it
    is: every member, a member not started yet named by pillar's node with
    its peer URL.
    """
    by_url = {url: name for name, url in wanted.items()}
    pairs = []
    for member in members:
        for url in member["peer_urls"]:
            pairs.append(f"{member['name'] or by_url.get(url, member['id'])}={url}")
    return ",".join(sorted(pairs))


def run(reach: Any, timeout: float, purge: bool = False) -> dict:
    """
    Bring etcd's members to pillar's etcd nodes (``reach.cluster.etcd.peer_urls``:
    name -> peer URL), joins first, one member at a time; the first failed
    step stops the run (what was done is reported). Returns ok, joined,
    left, kept_data or purged, steps, comment.
    """
    acts = _Etcd(reach, timeout)
    wanted = acts.wanted
    result: dict = {"ok": True, "joined": [], "left": [], "steps": [], "purged" if purge else "kept_data": []}
    try:
        try:
            members = acts.members()
        except CommandExecutionError as exc:
            members = _down(acts, wanted, result, str(exc))
            if members is None:
                return result
        joining, leaving = plan(wanted, members)
        if not joining and not leaving:
            return dict(result, comment=result.get("comment") or
                        f"etcd's members are pillar's etcd nodes ({', '.join(sorted(wanted))})")
        for name in joining:
            members = _join(acts, wanted, name, members, result)
        for member in leaving:
            members = _leave(acts, wanted, member, members, purge, result)
    except CommandExecutionError as exc:
        return dict(result, ok=False, comment=str(exc))
    return dict(result, comment=f"joined: {', '.join(result['joined']) or 'none'}; "
                                f"left: {', '.join(result['left']) or 'none'}")


def _down(acts: _Etcd, wanted: dict[str, str], result: dict, problem: str) -> list[dict] | None:
    """
    No endpoint answers. A new cluster, or one whose every node holds its
    data: nothing to do here (None; the etcd stage starts them). Some hold
    data and others would join: those with data are started first (their
    own data, nothing joins before they answer), then the members as they
    see them.
    """
    try:
        started = sorted(name for name in wanted if acts.local(name)["bootstrapped"])
    except CommandExecutionError as exc:
        raise CommandExecutionError(f"etcd does not answer ({problem}) and a host cannot tell whether it holds "
                                    f"etcd data: {exc}") from None
    if not started:
        result["comment"] = ("a new etcd cluster: no etcd node holds data yet; the etcd stage starts all of them "
                             f"({', '.join(sorted(wanted))})")
        return None
    if started == sorted(wanted):
        result["comment"] = (f"etcd does not answer; every etcd node holds its data ({', '.join(started)}), "
                             "so none joins: the etcd stage starts them")
        return None
    for name in started:
        acts.start(name, None)
    acts.healthy(started[0], started)
    result["steps"].append(f"etcd did not answer: started on {', '.join(started)} (their own data), healthy")
    return acts.members()


def _staying(wanted: dict[str, str], members: list[dict]) -> list[str]:
    """The members pillar keeps that have started (a name), in order: changes go through the first."""
    return sorted(m["name"] for m in members if m["name"] in wanted)


def _join(acts: _Etcd, wanted: dict[str, str], name: str, members: list[dict], result: dict) -> list[dict]:
    staying = _staying(wanted, members)
    if not staying:
        raise CommandExecutionError(f"{name} cannot join: no member of the cluster is an etcd node of pillar")
    found = acts.local(name)
    if found["bootstrapped"]:
        raise CommandExecutionError(
            f"{name} cannot join: {found['data_dir']} holds etcd data of an earlier member; move it aside "
            f"(salt {name} etcd_cluster.retire_local) and run again")
    added = [m for m in members if wanted[name] in m["peer_urls"]]
    if not added:
        acts.change("member_present", staying[0], name, peer_url=wanted[name])
        result["steps"].append(f"member {name} ({wanted[name]}) added through {staying[0]}")
        members = acts.members()
    cluster = initial_cluster(members, wanted)
    acts.start(name, cluster)
    result["steps"].append(f"etcd started on {name} (initial cluster {cluster}, existing)")
    acts.healthy(staying[0], sorted({*staying, name}))
    result["steps"].append(f"etcd healthy: {', '.join(sorted({*staying, name}))}")
    result["joined"].append(name)
    return acts.members()


def _leave(acts: _Etcd, wanted: dict[str, str], member: dict, members: list[dict], purge: bool,
           result: dict) -> list[dict]:
    staying = _staying(wanted, members)
    label = member["name"] or member["id"]
    if not staying:
        raise CommandExecutionError(f"{label} cannot leave: no member of the cluster is an etcd node of pillar")
    acts.change("member_absent", staying[0], member["name"] or member["id"])
    result["steps"].append(f"member {label} removed through {staying[0]}")
    if member["name"]:
        try:
            done = acts.retire(member["name"], purge)
            result["steps"].append(f"etcd stopped and disabled on {label}; its data: {done.get('data') or 'none'}")
            result["purged" if purge else "kept_data"].append(f"{label}:{done.get('data') or 'none'}")
        except CommandExecutionError as exc:
            result["steps"].append(f"etcd on {label} not stopped ({exc}): stop it there and move "
                                   "its data directory aside before it joins again")
    acts.healthy(staying[0], staying)
    result["steps"].append(f"etcd healthy: {', '.join(staying)}")
    result["left"].append(label)
    return acts.members()
