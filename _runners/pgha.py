"""
The pgha runner, on the Salt master: the operator's view of the whole cluster
and the commands that need all of it at once. It sequences and formats: the
cluster's model is built here, once per command, from the master's own pillar
(``pgha_model.build``); the facts come from ``_utils/`` and the minions'
functions, reached through one object (``pgha_reach.Reach``). Every command
that changes the cluster holds the cluster's lock in etcd (``pgha_lock``).
Checks and drills use the formula's probe role and database, never the users'
data. Needs psycopg on the master (matplotlib, optional, draws the drill).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import salt.client
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha"

ROLLING = ("postgresql", "patroni")
# How many more reads, a second apart, pgha.check gives a replica that lags (a record in flight).
LAG_REREADS = 3


def __virtual__():
    if importlib.util.find_spec("psycopg") is None:
        return (False, "pgha runner: psycopg is not installed in the master's Python")
    return __virtualname__


# ---------------------------------------------------------------------------
# the cluster as the master reaches it
# ---------------------------------------------------------------------------


def _cluster():
    """The cluster's model as the master sees it (its own pillar, every secret), built once per command."""
    if "pgha.cluster" not in __context__:
        __context__["pgha.cluster"] = __utils__["pgha_runner.model"](
            __opts__, __salt__["pillar.show_pillar"](__opts__["id"]))
    return __context__["pgha.cluster"]


def _reach(cluster=None):
    return __utils__["pgha_runner.reach"](cluster or _cluster(), __opts__["conf_file"])


def _verdict(result: dict) -> dict:
    """The result; unless it says ok, healthy or valid, failed: retcode 1 for the orchestration and salt-run."""
    if not result.get("ok", result.get("healthy", result.get("valid", True))):
        __context__["retcode"] = result["retcode"] = 1  # here: a utility's __context__ is not this module's
    return result


def _one_line(function):
    """
    A bad argument, a cluster the command cannot reach, or a lock held by
    another command, answered with one line naming the command and the
    problem and a non-zero exit, never a traceback.
    """

    @functools.wraps(function)
    def answer(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, CommandExecutionError) as exc:
            __context__["retcode"] = 1
            data = {f"pgha.{function.__name__}": str(exc), "retcode": 1}
            return {"outputter": "txt", "data": data} if __opts__.get("output") in (None, "", "nested", "txt") else data

    return answer


def _check(kind: str, *args: Any, **kwargs: Any) -> Any:
    """One argument check of ``_utils/pgha_args.py``: the value to use, or ``ValueError`` with one line."""
    return __utils__[f"pgha_args.{kind}"](*args, **kwargs)


# ---------------------------------------------------------------------------
# the cluster's lock
# ---------------------------------------------------------------------------


def _take(command: str, args: dict, wait: Any = 0):
    return __utils__["pgha_runner.take"](_cluster(), __opts__["id"], command, args, wait)


def _under_lock(command: str, args: dict, wait: Any, act: Callable[[], dict]) -> dict:
    """``act()`` holding the cluster's lock (its arguments checked before): its verdict, a lease lost said."""
    lock = _take(command, args, wait)
    try:
        result = act()
    finally:
        lock.release()
    if lock.lost:
        result["lock_lost"] = lock.lost
    return _verdict(result)


@_one_line
def lock(wait: Any = 0, required: Any = True, hold: Any = 0, command: str = "state.orchestrate pgha") -> dict:
    """
    Take the cluster's lock. ``hold=<seconds>``: keep it that long, then
    release it (work by hand meanwhile: every other command is refused).
    Without ``hold``: keep it for the rest of this process; the
    orchestration's first stage does so (its steps share it) and
    ``pgha.unlock`` releases it at its end; otherwise it expires within
    ``pgha:lock:ttl`` seconds of the process's end. ``required=False``:
    etcd not answering yet (a new cluster) is no refusal.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.lock hold=600
    """
    seconds = _check("seconds", hold or 0, "hold", minimum=0, maximum=86400)
    try:
        taken = _take(command if not seconds else "pgha.lock", {"hold": seconds or None}, wait)
    except CommandExecutionError as exc:
        if _check("flag", required, "required") or "cannot take" not in str(exc):
            raise
        __utils__["pgha_lock.mark_pending"](__utils__["pgha_lock.of"](_cluster())[1])
        return {"locked": False, "comment": f"etcd does not answer yet: the lock is taken once it does ({exc})"}
    if seconds:
        time.sleep(seconds)
        return {"locked": False, "held_s": seconds, "released": taken.release(), "lost": taken.lost}
    return {"locked": True, "shared": taken.shared, "holder": taken.holder}


@_one_line
def unlock(confirm: Any = False) -> dict:
    """
    Release the lock this process holds (the orchestration's last stage);
    with ``confirm=True``, break the cluster's lock whoever holds it (a
    holder that is gone for good; its lease expires by itself within
    ``pgha:lock:ttl`` seconds otherwise).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.unlock confirm=True
    """
    etcd, key = __utils__["pgha_lock.of"](_cluster())
    mine = __utils__["pgha_lock.held_here"](etcd, key)
    if mine:
        __utils__["pgha_lock.break_lock"](etcd, key)
        os.environ.pop("PGHA_LOCK", None)
        return {"released": True, "holder": mine}
    if not _check("flag", confirm, "confirm"):
        holder = __utils__["pgha_lock.holder"](etcd, key)
        raise CommandExecutionError("this process holds no lock" + (
            f"; {__utils__['pgha_lock.describe'](holder)}: break it with confirm=True only if its holder is gone"
            if holder else "; the cluster is not locked"))
    return {"released": bool(__utils__["pgha_lock.break_lock"](etcd, key))}


# ---------------------------------------------------------------------------
# the operator's view (read-only: never locked)
# ---------------------------------------------------------------------------


def _status_data(reach) -> dict:
    return __utils__["pgha_runner.status_data"](reach)


def _members(reach) -> list[dict]:
    """The members as Patroni's REST API lists them now."""
    return reach.api.members()


@_one_line
def status(table: Any = None) -> Any:
    """
    The whole cluster: Patroni members (role, state, timeline, lag, streaming, version), etcd's
    endpoints, HAProxy's servers, who holds the cluster's lock, and with a backup node the newest
    backup's age and how archiving goes, with a monitor node the alerts firing now. A table; data
    with ``--out=json`` (or ``table=False``).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.status
        salt-run pgha.status --out=json
    """
    as_table = __opts__.get("output") in (None, "", "nested", "txt") if table is None else _check("flag", table, "table")
    data = _status_data(_reach())
    if not as_table:
        return data
    text = __utils__["pgha_cluster.status_table"](data)
    if "backups" in data:
        found = data["backups"]
        text += "\n" + (f"backups: cannot read the repository: {found['error']}" if "error" in found
                        else __utils__["pgha_backups.line"](found))
    alerts = __utils__["pgha_runner.alerts_line"](data)
    return {"outputter": "txt", "data": text + ("\n" + alerts if alerts else "")}


@_one_line
def check(max_lag: Any = None) -> dict:
    """
    Every health gate at once: etcd, one leader, every member streaming on its timeline within the
    lag bound, HAProxy's writes to the leader alone, the probe role writing through HAProxy; with a
    backup node, archiving working and the newest backup within what the schedule allows
    (``pgha:backup:max_age_hours``). Non-zero exit when anything is unhealthy (for cron or monitoring).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.check
        salt-run pgha.check max_lag=1048576
    """
    bound = None if max_lag is None else _check("count", max_lag, "max_lag")
    reach = _reach()
    cluster, data = reach.cluster, _status_data(reach)
    lag_bound = cluster.gates.max_lag_bytes if bound is None else bound
    problems = __utils__["pgha_cluster.cluster_problems"](data, len(cluster.pg_nodes), lag_bound)
    for _ in range(LAG_REREADS):
        # A record in flight (a commit, archive_timeout's WAL switch) lags a replica for
        # milliseconds: only a lag that outlasts a few reads is a problem.
        if not problems or not all(" lags " in problem for problem in problems):
            break
        time.sleep(1)
        try:
            data = dict(data, members=_members(reach))
        except CommandExecutionError:
            break
        problems = __utils__["pgha_cluster.cluster_problems"](data, len(cluster.pg_nodes), lag_bound)
    problems += __utils__["pgha_probe.probe_problems"](__utils__["pgha_drill.probe_dsn"](cluster),
                                                       cluster.address(data["leader"]))
    problems += __utils__["pgha_runner.backup_problems"](data)
    return _verdict({"healthy": not problems, "problems": problems, "leader": data["leader"]})


@_one_line
def write_check(timeout: Any = 60, path: str = "leader") -> dict:
    """
    Check, waiting at most ``timeout`` s, that a write through HAProxy's leader port (or
    ``path=pooler``) commits on the Patroni leader (the probe role, in the formula's database).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.write_check timeout=60
        salt-run pgha.write_check path=pooler
    """
    limit = _check("seconds", timeout, "timeout")
    reach = _reach()
    options = _check("drill_options", {"path": path}, reach.cluster)

    def leader_address() -> str | None:
        leader = reach.leader()
        return reach.cluster.address(leader["name"]) if leader else None

    dsn = __utils__["pgha_drill.probe_dsn"](reach.cluster, options["path"])
    return _verdict(__utils__["pgha_probe.wait_write"](dsn, leader_address, limit))


@_one_line
def validate(pillar: dict | None = None, tgt: Any = "*", tgt_type: str = "glob") -> dict:
    """
    Check the ``pgha`` pillar, or a change to it (``pillar='{"pgha": ...}'``): each minion what it
    sees (its roles' secrets), the master every secret, and that the master's file server serves no
    file under a pillar root and none holding a secret. Every wrong key (or file) named; non-zero exit.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.validate
        salt-run pgha.validate pillar='{"pgha": {"patroni": {"ttl": 10}}}'
    """
    if pillar is not None and not isinstance(pillar, dict):
        raise ValueError(f"pillar must be a map such as '{{\"pgha\": {{...}}}}' (got {pillar!r})")
    with salt.client.get_local_client(__opts__["conf_file"]) as client:
        ret = client.cmd(tgt, "pgha_config.validate", kwarg={"pillar": pillar} if pillar else None, timeout=60,
                         tgt_type=tgt_type, full_return=True)
    errors = __utils__["pgha_secrets.minion_errors"](ret, tgt, tgt_type)
    master = (__salt__["pillar.show_pillar"](__opts__["id"]) or {}).get("pgha") or {}  # the master has every secret
    errors += [e for e in __utils__["pgha_secrets.cluster_problems"](master, pillar) if e not in errors]
    errors += __utils__["pgha_fileserver.problems"](__utils__["pgha_fileserver.served"](__opts__),
                                                    __opts__.get("pillar_roots"), master.get("secrets"))
    return _verdict({"valid": not errors, "errors": errors, "minions": sorted(ret)})


# ---------------------------------------------------------------------------
# commands that change the cluster (each holds the cluster's lock)
# ---------------------------------------------------------------------------


def _driller():
    return __utils__["pgha_runner.driller"]()


@_one_line
def failover_drill(mode: str = "stop", timeout: Any = None, report: Any = True, candidate: str | None = None,
                   freeze_s: Any = None, outage_s: Any = None, member: str | None = None, path: str = "leader",
                   wait: Any = 0, alerts: Any = True, partition_s: Any = None) -> dict:
    """
    Inject a fault (docs/explanation/drill.md: stop, crash, switchover, freeze,
    dcs-outage, etcd-member-loss, sync-standby-loss, dcs-loss, partition-*) while the
    probe role writes numbered rows through HAProxy (or ``path=pooler``),
    undo it whatever fails, and measure: what was restored, lost (``lost``,
    ``failed_writes``), how long (``rto_s``, ...), phase by phase (``phases``). Non-zero
    exit when not ``ok``; JSON report and picture in ``pgha:drill:report_dir``.
    With monitoring on, the alert the mode expects must fire and resolve
    (``alert_s``, ``alert_resolved_s``; ``alerts=False``: not watched).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.failover_drill mode=stop
        salt-run pgha.failover_drill mode=freeze --out=json
        salt-run pgha.failover_drill mode=dcs-outage outage_s=40
        salt-run pgha.failover_drill mode=partition-leader partition_s=30
    """
    __utils__["pgha_faults.fault"](mode)
    given = {"timeout": timeout, "report": report, "candidate": candidate, "path": path, "freeze_s": freeze_s,
             "outage_s": outage_s, "member": member, "partition_s": partition_s}
    options, drill = _driller()
    chosen = options(_cluster(), given)
    watch = __utils__["pgha_args.flag"](alerts, "alerts")
    return _under_lock("pgha.failover_drill", dict(given, mode=mode), wait,
                       lambda: drill(_reach(), mode, chosen, alerts=watch))


@_one_line
def switchover(candidate: str | None = None, timeout: Any = None, wait: Any = 0) -> dict:
    """
    A planned move of the leader (to ``candidate``) through Patroni, measured by the drill's
    writer: ``rto_s``, ``write_gap_s``, ``failed_writes``, ``client_stall_s``, ``lost``. PgBouncer
    is paused for the move and resumed once HAProxy routes to the new leader, whatever fails.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.switchover
        salt-run pgha.switchover candidate=postgres02
    """
    given = {"timeout": timeout, "report": False, "candidate": candidate}
    options, drill = _driller()
    chosen = options(_cluster(), given)
    return _under_lock("pgha.switchover", {"candidate": candidate}, wait, lambda: drill(_reach(), "switchover", chosen))


def _rolling(action: str, what: str, pending_only: bool, timeout: float) -> dict:
    """A rolling restart or reload through ``_utils/pgha_rolling.py``, acting through the members' minions."""
    reach = _reach()
    only = None
    if action == "restart" and what == "postgresql" and pending_only:
        only = {m["name"] for m in reach.members() if m["pending_restart"]}
    options, drill = _driller()
    chosen = options(reach.cluster, {"timeout": timeout, "report": False})
    result = __utils__["pgha_rolling.run"](reach, action, lambda: drill(reach, "switchover", chosen), timeout, what,
                                           pending_only, only)
    if only is not None:
        result["pending_restart_before"] = sorted(only)
    return result


@_one_line
def restart(pending_only: Any = True, timeout: Any = 120, what: str = "postgresql", wait: Any = 0) -> dict:
    """
    Rolling restart, replicas first, each followed by a health gate, the leader last after a
    switchover: PostgreSQL through Patroni (default; only members with ``pending_restart`` unless
    ``pending_only=False``), or ``what=patroni``: the Patroni service (a newly installed Patroni).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.restart
        salt-run pgha.restart pending_only=False
        salt-run pgha.restart what=patroni
    """
    _check("choice", what, "what", ROLLING)
    limit = _check("seconds", timeout, "timeout", minimum=10)
    pending = _check("flag", pending_only, "pending_only")
    return _under_lock("pgha.restart", {"what": what, "pending_only": pending}, wait,
                       lambda: _rolling("restart", what, pending, limit))


@_one_line
def reload(timeout: Any = 60, wait: Any = 0) -> dict:
    """
    Rolling reload of Patroni's and PostgreSQL's configuration (replicas
    first, leader last), each followed by a health gate.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.reload
    """
    limit = _check("seconds", timeout, "timeout", minimum=10)
    return _under_lock("pgha.reload", {}, wait, lambda: _rolling("reload", "patroni", False, limit))


@_one_line
def retire(purge_data: Any = False, timeout: Any = 120, wait: Any = 0) -> dict:
    """
    Scale in (``_utils/pgha_retire.py``): Patroni members pillar no longer lists leave one at a time
    (switchover away, HAProxy drain, Patroni disabled, gone from the member list); data kept unless
    ``purge_data=True``. The orchestration runs it before the PostgreSQL states.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.retire
        salt-run pgha.retire purge_data=True
    """
    purge = _check("flag", purge_data, "purge_data")
    limit = _check("seconds", timeout, "timeout", minimum=10)

    options, drill = _driller()

    def switchover(wider, candidate: str | None) -> dict:
        return drill(wider, "switchover", options(wider.cluster, {"timeout": limit, "report": False,
                                                                 "candidate": candidate}))

    return _under_lock("pgha.retire", {"purge_data": purge}, wait,
                       lambda: __utils__["pgha_retire.run"](_reach(), switchover, limit, purge))


@_one_line
def cold_start(timeout: Any = 120, wait: Any = 0) -> dict:
    """
    A stopped cluster started again (``_utils/pgha_cold_start.py``): when
    no Patroni member leads, every PostgreSQL node that holds the cluster's
    data is started, and a leader awaited (Patroni gives the lock only to a
    member that cannot have missed an acknowledged write). A running or a
    new cluster is left alone. The orchestration runs it before the
    bootstrap leader's stage.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.cold_start
    """
    limit = _check("seconds", timeout, "timeout", minimum=10)
    return _under_lock("pgha.cold_start", {}, wait, lambda: __utils__["pgha_cold_start.run"](_reach(), limit))


@_one_line
def etcd_members(purge_data: Any = False, timeout: Any = 120, wait: Any = 0) -> dict:
    """
    etcd's members follow pillar (``_utils/pgha_etcd_members.py``), one at a time, health checked after
    each: new etcd nodes join the running cluster, members pillar no longer lists leave (etcd stopped,
    data moved aside unless ``purge_data=True``). The orchestration runs it before etcd's states.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.etcd_members
    """
    purge = _check("flag", purge_data, "purge_data")
    limit = _check("seconds", timeout, "timeout", minimum=10)
    return _under_lock("pgha.etcd_members", {"purge_data": purge}, wait,
                       lambda: __utils__["pgha_etcd_members.run"](_reach(), limit, purge))


@_one_line
def dcs_recover(timeout: Any = 180, wait: Any = 0) -> dict:
    """
    A running cluster brought back onto a new or emptied etcd
    (``_utils/pgha_dcs_recovery.py``): recognised when Patroni runs on the
    PostgreSQL nodes while etcd holds none of the cluster's keys; etcd's
    access control applied first, then Patroni restarted on the node that
    was leading (it leads in the new etcd), then on the others; refused,
    touching nothing, when it cannot tell which node was leading. A cluster
    whose etcd holds its keys is left alone. The orchestration runs it after
    etcd's stages (``pgha-orch-dcs-recovered``).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.dcs_recover
    """
    limit = _check("seconds", timeout, "timeout", minimum=10)
    return _under_lock("pgha.dcs_recover", {}, wait, lambda: __utils__["pgha_dcs_recovery.run"](_reach(), limit))

