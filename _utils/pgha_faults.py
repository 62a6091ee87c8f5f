"""
The faults pgha's failover drill injects, one small unit each, registered by
mode name. A unit plans its fault on the cluster it finds (whom it hits, how
long it is held, which events the drill waits for), injects it, undoes it
and adds its own verdict; the engine (``_utils/pgha_drill.py``) runs the
writer, watches, measures and reports, whichever unit it is given.

Units reach the hosts through the minions' own functions
(``pgha_service.*``, ``patroni.switchover``), called through the cluster as
the runner reaches it (``pgha_reach.Reach``), with the drill's ``Options``.
``plan`` raises ``ValueError`` with a one-line reason when the fault cannot
be drilled on this cluster; nothing has been touched then. ``inject``
returns what it saw: the fault's moment on the host (``at``) and what it
measured (``report``).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from salt.exceptions import CommandExecutionError

LEADER_EVENTS = ("promotion", "haproxy_switch", "first_write")
# Members that acknowledge commits: Patroni's synchronous standbys (synchronous_mode on) and quorum standbys (quorum).
STANDBY_ROLES = ("sync_standby", "quorum_standby")
# How long sync-standby-loss keeps a quorum standby down: no new standby is awaited (another already votes).
QUORUM_HOLD_S = 10.0


class Fault:
    """A fault of the drill. Subclasses set ``mode`` and override what differs."""

    mode = ""
    summary = ""
    # The unit undoes its fault (the rejoin is timed from the undoing, not from the promotion).
    restores = True
    # The drill expects another member to lead after this fault.
    moves_leader = False

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        return {"target": leader["name"], "until": LEADER_EVENTS if self.moves_leader else ()}

    def inject(self, reach: Any, options: Any, plan: dict) -> dict:
        raise NotImplementedError

    def restore(self, reach: Any, options: Any, plan: dict) -> list[str]:
        return []

    def judge(self, reach: Any, result: dict) -> list[str]:
        if not self.moves_leader:
            return []
        if not result.get("new_leader"):
            return ["no new leader took over"]
        if result.get("rto_s") is None:
            return [f"no write through HAProxy was acknowledged by the new leader {result['new_leader']}"]
        return []


def _service(reach: Any, options: Any, minion: str, action: str, service: str) -> dict:
    answer = reach.call(minion, f"pgha_service.{action}", service, wait=int(options.timeout))
    return answer if isinstance(answer, dict) else {}


class StopLeader(Fault):
    mode = "stop"
    summary = "the service manager stops Patroni on the leader (systemctl stop patroni)"
    moves_leader = True
    # the pgha_service function that takes Patroni down, and the moment it reports
    action, moment = "stop", "stopping_at"

    def inject(self, reach: Any, options: Any, plan: dict) -> dict:
        return {"at": _service(reach, options, plan["target"], self.action, "patroni").get(self.moment)}

    def restore(self, reach: Any, options: Any, plan: dict) -> list[str]:
        _service(reach, options, plan["target"], "start", "patroni")
        return [f"patroni started on {plan['target']}"]


class CrashLeader(StopLeader):
    mode = "crash"
    summary = "SIGKILL to Patroni and the postmaster on the leader, kept down until the drill starts it"
    action, moment = "crash", "killed_at"


class Switchover(Fault):
    """
    With PgBouncer enabled, the switchover is wrapped in a pause of the
    pooler: PAUSE (its clients' next queries wait), the switchover, HAProxy
    routing to the new leader, RESUME; whatever fails, the pooler is resumed
    when this drill paused it and did not resume it (``plan["undo"]``, the
    unit's own ledger), never a pause of someone else's.
    """

    mode = "switchover"
    summary = "a planned switchover through Patroni (PgBouncer paused meanwhile, when enabled)"
    moves_leader = True
    restores = False

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        candidate = options.candidate
        names = [m["name"] for m in members]
        if candidate and (candidate == leader["name"] or candidate not in names):
            raise ValueError(f"candidate {candidate!r} must be a member other than the leader {leader['name']} "
                             f"(members: {', '.join(names)})")
        syncs = [m["name"] for m in members if m["role"] in STANDBY_ROLES]
        if candidate and syncs and candidate not in syncs:
            raise ValueError(f"in synchronous mode Patroni hands the leadership only to a synchronous standby "
                             f"or a quorum standby ({', '.join(syncs)}), not to {candidate}")
        # a session-pooling PgBouncer would hold the pause until every client leaves: not paused
        pooler = reach.cluster.pooler
        pooled = pooler.enabled and pooler.pool_mode != "session"
        return dict(super().plan(reach, options, members, leader), candidate=candidate, undo=[],
                    pooler=pooler.node if pooled else None, report={"pooler_paused": pooled})

    def inject(self, reach: Any, options: Any, plan: dict) -> dict:
        report: dict = {}
        if not plan["pooler"]:
            return {"at": _request_switchover(reach, options, plan), "report": report}
        plan["undo"].append("resume")  # before the pause: a pause whose answer is lost is undone too
        paused = reach.call(plan["pooler"], "pgha_pooler.pause", timeout=options.timeout, wait=int(options.timeout) + 30)
        # the resume asked now, done by the pooler's host itself the moment HAProxy routes to the new leader
        resumed: dict = {}
        waiter = threading.Thread(target=_resume_when_routed, args=(reach, options, plan, resumed), daemon=True)
        waiter.start()
        at = _request_switchover(reach, options, plan)
        waiter.join(options.timeout + 60)
        if "error" in resumed or waiter.is_alive():
            raise CommandExecutionError(resumed.get("error") or "PgBouncer's resume did not answer in time")
        plan["undo"].remove("resume")
        if resumed.get("resumed_at") and paused.get("paused_at"):
            report["pooler_paused_s"] = round(resumed["resumed_at"] - paused["paused_at"], 3)
        return {"at": at, "report": report}

    def restore(self, reach: Any, options: Any, plan: dict) -> list[str]:
        if "resume" in plan["undo"] and reach.call(plan["pooler"], "pgha_pooler.resume", wait=60).get("changed"):
            return [f"PgBouncer resumed on {plan['pooler']}"]
        return []


def _request_switchover(reach: Any, options: Any, plan: dict) -> float:
    """POST /switchover from the master to the members' REST API (the leader first); when it was asked."""
    body = {"leader": plan["target"], **({"candidate": plan["candidate"]} if plan["candidate"] else {})}
    asked = time.time()
    reach.api.any_member("/switchover", method="POST", body=body, ok=(200, 202), auth=True,
                         timeout=options.timeout, first=[plan["target"]])
    return asked


def _resume_when_routed(reach: Any, options: Any, plan: dict, answer: dict) -> None:
    try:
        answer.update(reach.call(plan["pooler"], "pgha_pooler.resume_when_routed", away_from=plan["target"],
                                 timeout=options.timeout, wait=int(options.timeout) + 30) or {})
    except CommandExecutionError as exc:
        answer["error"] = str(exc)


class FreezeLeader(Fault):
    mode = "freeze"
    summary = "SIGSTOP to Patroni on the leader for freeze_s (a stalled host), then SIGCONT"

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        hold = float(options.freeze_s)
        return dict(super().plan(reach, options, members, leader), hold_s=hold, report={"freeze_s": hold})

    def inject(self, reach: Any, options: Any, plan: dict) -> dict:
        return {"at": _service(reach, options, plan["target"], "freeze", "patroni").get("frozen_at")}

    def restore(self, reach: Any, options: Any, plan: dict) -> list[str]:
        _service(reach, options, plan["target"], "thaw", "patroni")
        return [f"patroni resumed (SIGCONT) on {plan['target']}"]


class DcsOutage(Fault):
    mode = "dcs-outage"
    summary = "every etcd member stopped for outage_s, then started"

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        hold = float(options.outage_s)
        failsafe = _dcs_setting(reach, "failsafe_mode")
        return {"target": None, "etcd": list(reach.cluster.etcd_nodes), "hold_s": hold,
                "report": {"outage_s": hold, "failsafe_mode": failsafe}}

    def inject(self, reach: Any, options: Any, plan: dict) -> dict:
        moments = [_service(reach, options, node, "stop", "etcd").get("stopping_at") for node in plan["etcd"]]
        return {"at": next((moment for moment in moments if moment), None)}

    def restore(self, reach: Any, options: Any, plan: dict) -> list[str]:
        return _start_etcd(reach, options, plan["etcd"])

    def judge(self, reach: Any, result: dict) -> list[str]:
        if result.get("failsafe_mode") and result.get("failed_writes"):
            return [f"failsafe_mode is on, yet {result['failed_writes']} writes failed during the DCS outage"]
        return []


class EtcdMemberLoss(Fault):
    mode = "etcd-member-loss"
    summary = "one etcd member stopped for outage_s, then started (a quorum remains)"

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        nodes = list(reach.cluster.etcd_nodes)
        if len(nodes) < 3:
            raise ValueError(f"etcd has {len(nodes)} member(s): losing one loses the quorum; "
                             "this drill needs three or more (mode=dcs-outage drills a full outage)")
        hold = float(options.outage_s)
        chosen = options.member or nodes[0]
        if chosen not in nodes:
            raise ValueError(f"member {chosen!r} is not an etcd node ({', '.join(nodes)})")
        return {"target": None, "etcd": [chosen], "hold_s": hold, "report": {"outage_s": hold, "etcd_member": chosen}}

    inject = DcsOutage.inject
    restore = DcsOutage.restore

    def judge(self, reach: Any, result: dict) -> list[str]:
        if result.get("failed_writes"):
            return [(f"{result['failed_writes']} writes failed while one etcd member of "
                    f"{len(reach.cluster.etcd_nodes)} was down")]
        return []


class SyncStandbyLoss(CrashLeader):
    mode = "sync-standby-loss"
    summary = "the synchronous standby crashes (kept down) until Patroni picks another, then restarts"
    moves_leader = False

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        syncs = [m["name"] for m in members if m["role"] in STANDBY_ROLES]
        if not syncs:
            raise ValueError("no synchronous standby to lose: synchronous mode is off "
                             "(salt <node> patroni.edit_config '{\"synchronous_mode\": true}')")
        if any(m["role"] == "quorum_standby" for m in members):
            # quorum commit: the others vote on; nothing new to wait for, held a while to measure the writes
            return {"target": syncs[0], "until": (), "hold_s": QUORUM_HOLD_S,
                    "report": {"fault_target": syncs[0], "held_s": QUORUM_HOLD_S}}
        return {"target": syncs[0], "until": ("sync_switch",), "report": {"fault_target": syncs[0]}}


class DcsLoss(Fault):
    """
    The DCS lost and rebuilt: every etcd member stopped, its data moved
    aside (kept: ``<data_dir>.removed-<time>``), for outage_s; then etcd
    started anew on every member at once (a new cluster: the states' own
    access control first) and the running cluster recovered onto it
    (``pgha_dcs_recovery``, as the orchestration's ``pgha-orch-dcs-recovered``
    stage does). Its verdict: the system identifier unchanged, etcd refusing
    anonymous clients at the end, and the recovery's own.
    """

    mode = "dcs-loss"
    summary = "every etcd member's data lost (stopped, moved aside) for outage_s, then etcd rebuilt and the cluster recovered"

    def plan(self, reach: Any, options: Any, members: list[dict], leader: dict) -> dict:
        hold = float(options.outage_s)
        system_id = reach.api.call(leader["name"], "/patroni", ok=(200, 503)).get("database_system_identifier")
        return {"target": None, "etcd": list(reach.cluster.etcd_nodes), "hold_s": hold,
                "report": {"outage_s": hold, "failsafe_mode": _dcs_setting(reach, "failsafe_mode"),
                           "system_identifier_before": system_id}}

    def inject(self, reach: Any, options: Any, plan: dict) -> dict:
        moments = [_service(reach, options, node, "stop", "etcd").get("stopping_at") for node in plan["etcd"]]
        moved = {node: reach.call(node, "etcd_cluster.retire_local", wait=int(options.timeout)).get("data")
                 for node in plan["etcd"]}
        return {"at": next((moment for moment in moments if moment), None), "report": {"etcd_data_moved": moved}}

    def restore(self, reach: Any, options: Any, plan: dict) -> dict:
        with ThreadPoolExecutor(max_workers=len(plan["etcd"])) as pool:  # a new cluster's members start together
            list(pool.map(lambda node: reach.apply(node, "pgha.etcd", wait=int(options.timeout) + 180), plan["etcd"]))
        reach.call(plan["etcd"][0], "etcd_cluster.wait_healthy", timeout=int(options.timeout),
                   wait=int(options.timeout) + 60)
        recovered = _recovery().run(reach, options.timeout)
        if not recovered["ok"]:
            raise CommandExecutionError(f"recovering onto the rebuilt etcd: {recovered['comment']}")
        try:
            reach.etcd("anonymous").post("/v3/kv/range", {"key": "Lw=="})  # "/"
            refused = False
        except CommandExecutionError:
            refused = True
        return {"restored": [f"etcd rebuilt on {', '.join(plan['etcd'])}", *recovered["steps"]],
                "report": {"recover_s": recovered.get("recover_s"), "recovered_leader": recovered.get("leader"),
                           "system_identifier_after": recovered.get("system_identifier"),
                           "anonymous_refused": refused}}

    def judge(self, reach: Any, result: dict) -> list[str]:
        problems = []
        before, after = result.get("system_identifier_before"), result.get("system_identifier_after")
        if not after or after != before:
            problems.append(f"the system identifier after the recovery ({after}) is not the one before ({before})")
        if reach.cluster.etcd.auth and not result.get("anonymous_refused"):
            problems.append("the rebuilt etcd answers anonymous clients")
        return problems


def _sibling(name: str) -> Any:
    """A module of _utils, loaded from beside this file (Salt's loader keeps _utils out of sys.path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"{name}_of_the_drill", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recovery() -> Any:
    return _sibling("pgha_dcs_recovery")


def _start_etcd(reach: Any, options: Any, nodes: list[str]) -> list[str]:
    for node in nodes:
        _service(reach, options, node, "start", "etcd")
    return [f"etcd started on {node}" for node in nodes]


def _dcs_setting(reach: Any, key: str) -> Any:
    try:
        return reach.api.any_member("/config")[1].get(key)
    except Exception:  # noqa: BLE001  # the report says None: unknown
        return None


FAULTS = {unit.mode: unit for unit in (StopLeader(), CrashLeader(), Switchover(), FreezeLeader(), DcsOutage(),
                                       SyncStandbyLoss(), EtcdMemberLoss(), DcsLoss(), *_sibling("pgha_partitions").UNITS)}


def modes() -> list[str]:
    """The drill's modes, by name."""
    return list(FAULTS)


def fault(mode: str) -> Fault:
    """The unit of one mode; ``ValueError`` naming the modes when there is none."""
    if mode not in FAULTS:
        raise ValueError(f"mode must be one of {', '.join(FAULTS)} (got {mode!r})")
    return FAULTS[mode]
