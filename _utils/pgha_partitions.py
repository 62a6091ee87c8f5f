"""
The failover drill's network partitions, one fault unit each (see
``pgha_faults``): some hosts cut off from others for ``partition_s``, then
healed. A cut is made on each cut-off host by the host itself
(``pgha_net.cut``: nftables drops every packet to or from the other side's
addresses, and heals by itself if the drill cannot), so it works the same
on real hosts and on the lab's namespaced ones; the Salt master is on
neither side: it still reaches every host, keeps the drill's minions
answering, and is the client that writes straight to a cut-off leader
(``old_leader_writable_s``).

- ``partition-leader``: the leader cut off from every other host: the side
  that keeps etcd elects a new leader; the old one must stop acknowledging
  writes before the new one is promoted.
- ``partition-leader-dcs``: the leader cut off from the etcd members only.
  With failsafe on (Patroni's documented behaviour) the leader keeps its
  role while every member answers its ``POST /failsafe``, and no write
  fails; with failsafe off it demotes and another member leads.
- ``partition-replica``: the synchronous standby (a quorum standby, an
  asynchronous replica without synchronous mode) cut off from every host.
- ``partition-etcd-minority`` (three etcd members or more): the leader and
  one etcd member (its own, when it is one) on one side, the other etcd
  members and the replicas on the other.

Plain Python; reached as ``__utils__["pgha_partitions.<function>"]`` and
registered in ``pgha_faults.FAULTS``.
"""

from __future__ import annotations

from typing import Any

LEADER_EVENTS = ("promotion", "haproxy_switch", "first_write")
STANDBY_ROLES = ("sync_standby", "quorum_standby")


class Partition:
    """A partition: ``sides`` says who is cut off (``cut_off``) and from whom (``cut_from``)."""

    mode = ""
    summary = ""
    restores = True
    moves_leader = False
    # a client writes straight to the old leader while it is cut off
    beside_leader = True

    def sides(self, reach: Any, members: list[dict], leader: dict) -> tuple[list[str], list[str]]:
        raise NotImplementedError

    def until(self, reach: Any, members: list[dict]) -> tuple[str, ...]:
        return LEADER_EVENTS if self.moves_leader else ()

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        cut_off, cut_from = self.sides(reach, members, leader)
        if not cut_off or not cut_from:
            raise ValueError(f"{self.mode}: nothing to cut (cut off: {cut_off}, from: {cut_from})")
        addresses = [reach.cluster.address(name) for name in cut_from]
        for node in cut_off:  # each cut-off host can be cut off, asked before anything changes
            answer = reach.call(node, "pgha_net.check", addresses, wait=int(options.timeout)) or {}
            if not answer.get("ok"):
                raise ValueError(f"{self.mode} cannot cut {node} off: " + "; ".join(answer.get("problems") or ["?"]))
        hold = float(options.partition_s)
        ask_first = [m["name"] for m in members if m["name"] not in cut_off]
        port = int(reach.cluster.settings["postgresql"]["port"])
        return {"target": cut_off[0], "cut_off": cut_off, "cut_from": cut_from, "hold_s": hold,
                "until": self.until(reach, members), "ask_first": ask_first,
                "writes_to": port if self.beside_leader else None,
                "report": {"partition_s": hold, "cut_off": cut_off, "cut_from": cut_from}}

    def inject(self, reach: Any, options: Any, plan: dict) -> dict:
        addresses = [reach.cluster.address(name) for name in plan["cut_from"]]
        # the kernel heals the cut by itself once the drill's every wait is over, should the drill not
        bound = int(plan["hold_s"] + 2 * options.timeout + 60)
        moments = []
        for node in plan["cut_off"]:
            answer = reach.call(node, "pgha_net.cut", addresses, seconds=bound, wait=int(options.timeout))
            moments.append((answer or {}).get("cut_at"))
        return {"at": max((moment for moment in moments if moment), default=None)}

    def restore(self, reach: Any, options: Any, plan: dict) -> list[str]:
        # every cut-off host, whatever its cut answered: an answer lost on the way may hide a cut made
        healed = []
        for node in plan["cut_off"]:
            if (reach.call(node, "pgha_net.heal", wait=int(options.timeout)) or {}).get("healed"):
                healed.append(f"partition healed on {node}")
        return healed

    def judge(self, reach: Any, result: dict) -> list[str]:
        if not self.moves_leader:
            return []
        if not result.get("new_leader"):
            return ["no new leader took over on the side that keeps etcd"]
        if result.get("rto_s") is None:
            return [f"no write through HAProxy was acknowledged by the new leader {result['new_leader']}"]
        return []


def _others(reach: Any, cut_off: list[str]) -> list[str]:
    """Every node of the cluster (pillar's) not in ``cut_off``."""
    return [name for name in reach.cluster.nodes if name not in cut_off]


class PartitionLeader(Partition):
    mode = "partition-leader"
    summary = "the leader's host cut off from every other host for partition_s, then healed"
    moves_leader = True

    def sides(self, reach: Any, members: list[dict], leader: dict) -> tuple[list[str], list[str]]:
        return [leader["name"]], _others(reach, [leader["name"]])


class PartitionLeaderDcs(Partition):
    mode = "partition-leader-dcs"
    summary = "the leader cut off from the etcd members only (it reaches the replicas and HAProxy), then healed"

    def sides(self, reach: Any, members: list[dict], leader: dict) -> tuple[list[str], list[str]]:
        return [leader["name"]], [name for name in reach.cluster.etcd_nodes if name != leader["name"]]

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        if leader["name"] in reach.cluster.etcd_nodes and len(reach.cluster.etcd_nodes) < 2:
            raise ValueError(f"the leader {leader['name']} is the only etcd member: nothing to cut it from")
        failsafe = _failsafe(reach)
        plan = super().plan(reach, options, members, leader)
        plan["failsafe"] = failsafe
        # without failsafe the leader demotes and another leads; with it, the leader stays
        plan["until"] = () if failsafe else LEADER_EVENTS
        plan["report"]["failsafe_mode"] = failsafe
        return plan

    def judge(self, reach: Any, result: dict) -> list[str]:
        if result.get("failsafe_mode"):
            problems = []
            if result.get("new_leader"):
                problems.append(f"failsafe_mode is on, yet {result['new_leader']} took over from the leader cut off "
                                "from etcd only")
            if result.get("failed_writes"):
                problems.append(f"failsafe_mode is on, yet {result['failed_writes']} writes failed while the leader "
                                "was cut off from etcd")
            return problems
        return [] if result.get("new_leader") else ["failsafe_mode is off, yet no other member took over"]


class PartitionReplica(Partition):
    mode = "partition-replica"
    summary = "the synchronous standby (any replica without synchronous mode) cut off from every host, then healed"
    beside_leader = False

    def sides(self, reach: Any, members: list[dict], leader: dict) -> tuple[list[str], list[str]]:
        standbys = [m["name"] for m in members if m["role"] in STANDBY_ROLES]
        replicas = [m["name"] for m in members if m["name"] != leader["name"]]
        if not replicas:
            raise ValueError("no replica to cut off")
        chosen = (standbys or replicas)[0]
        return [chosen], _others(reach, [chosen])

    def until(self, reach: Any, members: list[dict]) -> tuple[str, ...]:
        # synchronous mode on: another standby is named once the cut-off one's member key expires
        syncs = [m for m in members if m["role"] == "sync_standby"]
        others = [m for m in members if m["role"] == "replica"]
        return ("sync_switch",) if syncs and others else ()

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        plan = super().plan(reach, options, members, leader)
        plan["report"]["fault_target"] = plan["target"]
        return plan


class PartitionEtcdMinority(Partition):
    mode = "partition-etcd-minority"
    summary = ("the leader and one etcd member (its own when it is one) cut off from the other etcd members "
               "and the replicas, then healed")
    moves_leader = True

    def sides(self, reach: Any, members: list[dict], leader: dict) -> tuple[list[str], list[str]]:
        etcd = list(reach.cluster.etcd_nodes)
        if len(etcd) < 3:
            raise ValueError(f"etcd has {len(etcd)} member(s): a minority side needs three or more "
                             "(the lab's TOPOLOGY=ha; mode=partition-leader cuts the leader off from all)")
        name = leader["name"]
        if name in etcd:
            cut_off = [name]
        else:  # an etcd member that is not a PostgreSQL node, if there is one, else another member's
            pg = set(reach.cluster.pg_nodes)
            cut_off = [name, next((n for n in etcd if n not in pg), etcd[0])]
        return cut_off, _others(reach, cut_off)


def _failsafe(reach: Any) -> bool | None:
    try:
        value = reach.api.any_member("/config")[1].get("failsafe_mode")
    except Exception:  # noqa: BLE001  # unknown: the report says None
        return None
    return bool(value) if value is not None else False


UNITS = (PartitionLeader(), PartitionLeaderDcs(), PartitionReplica(), PartitionEtcdMinority())
