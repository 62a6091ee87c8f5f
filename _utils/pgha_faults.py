"""
The faults pgha's failover drill injects, one small unit each, registered by
mode name. A unit plans its fault on the cluster it finds (whom it hits, how
long it is held, which events the drill waits for), injects it, undoes it
and adds its own verdict; the engine (``_utils/pgha_drill.py``) runs the
writer, watches, measures and reports, whichever unit it is given.

Units reach the hosts through the minions' own functions
(``pgha_service.*``, ``patroni.switchover``), called through the drill's
``Context``. ``plan`` raises ``ValueError`` with a one-line reason when the
fault cannot be drilled on this cluster; nothing has been touched then.
"""

from __future__ import annotations

import time
from typing import Any

from salt.exceptions import CommandExecutionError

LEADER_EVENTS = ("promotion", "haproxy_switch", "first_write")


class Fault:
    """A fault of the drill. Subclasses set ``mode`` and override what differs."""

    mode = ""
    summary = ""
    # The unit undoes its fault (the rejoin is timed from the undoing, not from the promotion).
    restores = True
    # The drill expects another member to lead after this fault.
    moves_leader = False

    def plan(self, ctx: Any, members: list[dict], leader: dict) -> dict:
        return {"target": leader["name"], "until": LEADER_EVENTS if self.moves_leader else ()}

    def inject(self, ctx: Any, plan: dict) -> float | None:
        raise NotImplementedError

    def restore(self, ctx: Any, plan: dict) -> list[str]:
        return []

    def judge(self, ctx: Any, result: dict) -> list[str]:
        if not self.moves_leader:
            return []
        if not result.get("new_leader"):
            return ["no new leader took over"]
        if result.get("rto_s") is None:
            return [f"no write through HAProxy was acknowledged by the new leader {result['new_leader']}"]
        return []


def _service(ctx: Any, minion: str, action: str, service: str) -> dict:
    answer = ctx.call(minion, f"pgha_service.{action}", service, wait=int(ctx.timeout))
    return answer if isinstance(answer, dict) else {}


class StopLeader(Fault):
    mode = "stop"
    summary = "the service manager stops Patroni on the leader (systemctl stop patroni)"
    moves_leader = True
    # the pgha_service function that takes Patroni down, and the moment it reports
    action, moment = "stop", "stopping_at"

    def inject(self, ctx: Any, plan: dict) -> float | None:
        return _service(ctx, plan["target"], self.action, "patroni").get(self.moment)

    def restore(self, ctx: Any, plan: dict) -> list[str]:
        _service(ctx, plan["target"], "start", "patroni")
        return [f"patroni started on {plan['target']}"]


class CrashLeader(StopLeader):
    mode = "crash"
    summary = "SIGKILL to Patroni and the postmaster on the leader, kept down until the drill starts it"
    action, moment = "crash", "killed_at"


class Switchover(Fault):
    """
    With PgBouncer enabled, the switchover is wrapped in a pause of the
    pooler: PAUSE (its clients' next queries wait), the switchover, HAProxy
    routing to the new leader, RESUME; the pooler is resumed whatever fails.
    """

    mode = "switchover"
    summary = "a planned switchover through Patroni (PgBouncer paused meanwhile, when enabled)"
    moves_leader = True
    restores = False

    def plan(self, ctx: Any, members: list[dict], leader: dict) -> dict:
        candidate = ctx.options.get("candidate")
        names = [m["name"] for m in members]
        if candidate and (candidate == leader["name"] or candidate not in names):
            raise ValueError(f"candidate {candidate!r} must be a member other than the leader {leader['name']} "
                             f"(members: {', '.join(names)})")
        syncs = [m["name"] for m in members if m["role"] == "sync_standby"]
        if candidate and syncs and candidate not in syncs:
            raise ValueError(f"in synchronous mode Patroni hands the leadership only to the synchronous standby "
                             f"({', '.join(syncs)}), not to {candidate}")
        # a session-pooling PgBouncer would hold the pause until every client leaves: not paused
        pooler = ctx.topo.get("pgbouncer") or {}
        pooled = bool(pooler.get("enabled")) and pooler.get("pool_mode") != "session"
        return dict(super().plan(ctx, members, leader), candidate=candidate,
                    pooler=ctx.topo["haproxy_nodes"][0] if pooled else None, report={"pooler_paused": pooled})

    def inject(self, ctx: Any, plan: dict) -> float | None:
        if plan["pooler"]:
            ctx.call(plan["pooler"], "pgha_pooler.pause", timeout=ctx.timeout, wait=int(ctx.timeout) + 30)
            paused = time.monotonic()
        # asked through the candidate's minion when there is one: a leader that is leaving has no REST secrets
        answer = ctx.call(plan["candidate"] or plan["target"], "patroni.switchover", candidate=plan["candidate"],
                          wait=int(ctx.timeout))
        if plan["pooler"]:
            _routed_elsewhere(ctx, plan["target"])
            ctx.call(plan["pooler"], "pgha_pooler.resume", wait=60)
            plan["report"]["pooler_paused_s"] = round(time.monotonic() - paused, 3)
        return answer.get("requested_at") if isinstance(answer, dict) else None

    def restore(self, ctx: Any, plan: dict) -> list[str]:
        if plan["pooler"] and ctx.call(plan["pooler"], "pgha_pooler.resume", wait=60).get("changed"):
            return [f"PgBouncer resumed on {plan['pooler']}"]
        return []


def _routed_elsewhere(ctx: Any, old_leader: str) -> None:
    """Wait, at most the drill's timeout, until HAProxy's leader port routes to one server, not ``old_leader``."""
    deadline = time.monotonic() + ctx.timeout
    while time.monotonic() < deadline:
        try:
            up = [name for name, state in ctx.haproxy().items() if str(state).startswith("UP")]
        except Exception:  # noqa: BLE001  # unreadable for a moment: look again
            up = []
        if len(up) == 1 and up[0] != old_leader:
            return
        time.sleep(0.1)
    raise CommandExecutionError(f"HAProxy's leader port did not route to a new leader within {ctx.timeout:.0f} s")


class FreezeLeader(Fault):
    mode = "freeze"
    summary = "SIGSTOP to Patroni on the leader for freeze_s (a stalled host), then SIGCONT"

    def plan(self, ctx: Any, members: list[dict], leader: dict) -> dict:
        hold = float(ctx.options["freeze_s"])
        return dict(super().plan(ctx, members, leader), hold_s=hold, report={"freeze_s": hold})

    def inject(self, ctx: Any, plan: dict) -> float | None:
        return _service(ctx, plan["target"], "freeze", "patroni").get("frozen_at")

    def restore(self, ctx: Any, plan: dict) -> list[str]:
        _service(ctx, plan["target"], "thaw", "patroni")
        return [f"patroni resumed (SIGCONT) on {plan['target']}"]


class DcsOutage(Fault):
    mode = "dcs-outage"
    summary = "every etcd member stopped for outage_s, then started"

    def plan(self, ctx: Any, members: list[dict], leader: dict) -> dict:
        hold = float(ctx.options["outage_s"])
        failsafe = _dcs_setting(ctx, "failsafe_mode")
        return {"target": None, "etcd": list(ctx.topo["etcd_nodes"]), "hold_s": hold,
                "report": {"outage_s": hold, "failsafe_mode": failsafe}}

    def inject(self, ctx: Any, plan: dict) -> float | None:
        moments = [_service(ctx, node, "stop", "etcd").get("stopping_at") for node in plan["etcd"]]
        return next((moment for moment in moments if moment), None)

    def restore(self, ctx: Any, plan: dict) -> list[str]:
        return _start_etcd(ctx, plan["etcd"])

    def judge(self, ctx: Any, result: dict) -> list[str]:
        if result.get("failsafe_mode") and result.get("failed_writes"):
            return [f"failsafe_mode is on, yet {result['failed_writes']} writes failed during the DCS outage"]
        return []


class EtcdMemberLoss(Fault):
    mode = "etcd-member-loss"
    summary = "one etcd member stopped for outage_s, then started (a quorum remains)"

    def plan(self, ctx: Any, members: list[dict], leader: dict) -> dict:
        nodes = list(ctx.topo["etcd_nodes"])
        if len(nodes) < 3:
            raise ValueError(f"etcd has {len(nodes)} member(s): losing one loses the quorum; "
                             "this drill needs three or more (mode=dcs-outage drills a full outage)")
        hold = float(ctx.options["outage_s"])
        chosen = ctx.options.get("member") or nodes[0]
        if chosen not in nodes:
            raise ValueError(f"member {chosen!r} is not an etcd node ({', '.join(nodes)})")
        return {"target": None, "etcd": [chosen], "hold_s": hold, "report": {"outage_s": hold, "etcd_member": chosen}}

    inject = DcsOutage.inject
    restore = DcsOutage.restore

    def judge(self, ctx: Any, result: dict) -> list[str]:
        if result.get("failed_writes"):
            return [f"{result['failed_writes']} writes failed while one etcd member of {len(ctx.topo['etcd_nodes'])} was down"]
        return []


class SyncStandbyLoss(CrashLeader):
    mode = "sync-standby-loss"
    summary = "the synchronous standby crashes (kept down) until Patroni picks another, then restarts"
    moves_leader = False

    def plan(self, ctx: Any, members: list[dict], leader: dict) -> dict:
        syncs = [m["name"] for m in members if m["role"] == "sync_standby"]
        if not syncs:
            raise ValueError("no synchronous standby to lose: synchronous mode is off "
                             "(salt <node> patroni.edit_config '{\"synchronous_mode\": true}')")
        return {"target": syncs[0], "until": ("sync_switch",), "report": {"fault_target": syncs[0]}}


def _start_etcd(ctx: Any, nodes: list[str]) -> list[str]:
    for node in nodes:
        _service(ctx, node, "start", "etcd")
    return [f"etcd started on {node}" for node in nodes]


def _dcs_setting(ctx: Any, key: str) -> Any:
    try:
        return ctx.api.any_member("/config")[1].get(key)
    except Exception:  # noqa: BLE001  # the report says None: unknown
        return None


FAULTS = {unit.mode: unit for unit in (StopLeader(), CrashLeader(), Switchover(), FreezeLeader(), DcsOutage(),
                                       SyncStandbyLoss(), EtcdMemberLoss())}


def modes() -> list[str]:
    """The drill's modes, by name."""
    return list(FAULTS)


def fault(mode: str) -> Fault:
    """The unit of one mode; ``ValueError`` naming the modes when there is none."""
    if mode not in FAULTS:
        raise ValueError(f"mode must be one of {', '.join(FAULTS)} (got {mode!r})")
    return FAULTS[mode]
