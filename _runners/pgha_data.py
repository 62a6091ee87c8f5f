"""
The pgha runner's commands for getting data back (the same ``pgha``
namespace as ``_runners/pgha.py``): the backups the repository holds, a
backup on demand, restores to a point in time (into a new instance beside
the cluster, or the whole cluster in place), and the restore drill that
proves them; and monitoring's: the alerts firing and Prometheus's targets,
and the orchestration's gate on them. The work is done in
``_utils/pgha_backups.py``, ``pgha_restore.py``, ``pgha_restore_drill.py``
and ``pgha_alerts.py``; every command that changes the cluster or its
repository holds the cluster's lock. Needs psycopg on the master.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import time
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha"

BACKUP_TYPES = ("full", "diff", "incr")
DRILL_MODES = ("point", "latest", "repo-outage")
# A restore's and a backup's bound: a big database takes hours.
LONGEST_S = 86400


def __virtual__():
    if importlib.util.find_spec("psycopg") is None:
        return (False, "pgha runner: psycopg is not installed in the master's Python")
    return __virtualname__


def _cluster():
    if "pgha.cluster" not in __context__:
        __context__["pgha.cluster"] = __utils__["pgha_runner.model"](
            __opts__, __salt__["pillar.show_pillar"](__opts__["id"]))
    return __context__["pgha.cluster"]


def _reach():
    return __utils__["pgha_runner.reach"](_cluster(), __opts__["conf_file"])


def _failed(result: dict) -> dict:
    """A result that is not ok: retcode 1 (set here: a utility's __context__ is another one)."""
    if not result.get("ok", True):
        __context__["retcode"] = result["retcode"] = 1
    return result


def _one_line(function):
    """A bad argument or a failure answered with one line naming the command and the problem, exit 1."""

    @functools.wraps(function)
    def answer(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, CommandExecutionError) as exc:
            __context__["retcode"] = 1
            data = {f"pgha.{function.__name__}": str(exc), "retcode": 1}
            return {"outputter": "txt", "data": data} if __opts__.get("output") in (None, "", "nested", "txt") else data

    return answer


def _locked(command: str, args: dict, wait: Any, act: Callable[[], dict]) -> dict:
    """``act()`` holding the cluster's lock; a lease lost on the way said in the result."""
    lock = __utils__["pgha_runner.take"](_cluster(), __opts__["id"], command, args, wait)
    try:
        result = act()
    finally:
        lock.release()
    if lock.lost:
        result["lock_lost"] = lock.lost
    return _failed(result)


def _seconds(value: Any, name: str, minimum: float = 10) -> float:
    return __utils__["pgha_args.seconds"](value, name, minimum=minimum, maximum=LONGEST_S)


@_one_line
def backups(table: Any = None) -> Any:
    """
    Every backup in the repository (label, type, start, stop, duration,
    size, size in the repository, WAL range), the archive's range, the
    leader's archiver (last archived segment and time, failures from
    ``pg_stat_archiver``) and the newest backup's age. A table; data with
    ``--out=json`` (or ``table=False``). Read-only.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.backups
        salt-run pgha.backups --out=json
    """
    as_table = (__opts__.get("output") in (None, "", "nested", "txt") if table is None
                else __utils__["pgha_args.flag"](table, "table"))
    data = __utils__["pgha_backups.facts"](_reach())
    data["problems"] = __utils__["pgha_backups.problems"](data)
    return {"outputter": "txt", "data": __utils__["pgha_backups.table"](data)} if as_table else data


@_one_line
def backup(type: str = "incr", timeout: Any = LONGEST_S, wait: Any = 0) -> dict:  # pylint: disable=redefined-builtin
    """
    Take a backup now: ``type=full``, ``diff`` or ``incr`` (default), on
    the backup node, from a standby when ``pgha:backup:from_standby`` and
    one answers; pgBackRest then expires what the retention no longer
    keeps. The new backup's label, source, size and duration.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.backup type=full
    """
    kind = __utils__["pgha_args.choice"](type, "type", BACKUP_TYPES)
    limit = _seconds(timeout, "timeout", minimum=60)
    return _locked("pgha.backup", {"type": kind}, wait, lambda: __utils__["pgha_backups.take"](_reach(), kind, limit))


@_one_line
def backup_ready(timeout: Any = 600, wait: Any = 0) -> dict:
    """
    Make the repository ready for the cluster (the orchestration's stage
    ``pgha-orch-backup-ready``): members waiting on a restart for
    archiving restarted (replicas first, the leader after a switchover),
    the stanza created (one that matches is kept), ``pgbackrest check``
    passing (the gate: every PostgreSQL node reached, a WAL segment
    archived from the leader), a full backup taken when the repository
    holds none. Nothing to do without a backup node.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.backup_ready
    """
    limit = _seconds(timeout, "timeout")

    def act() -> dict:
        reach = _reach()
        pending = sorted(m["name"] for m in reach.members() if m.get("pending_restart"))
        restarted = None
        if pending and reach.cluster.backup.enabled:
            # pgha.restart shares this process's lock; run here, in the runner's own context
            restarted = __salt__["pgha.restart"](pending_only=True, timeout=min(limit, 600))
            if not isinstance(restarted, dict) or restarted.get("retcode") or not restarted.get("ok", True):
                return {"ok": False, "pending_restart": pending, "restarted": restarted,
                        "comment": "the members waiting on a restart (archive_mode) did not restart"}
        result = __utils__["pgha_backups.ready"](reach, limit)
        return dict(result, restarted=restarted) if restarted else result

    return _locked("pgha.backup_ready", {}, wait, act)


@_one_line
def restore(target: Any = "latest", host: str | None = None, name: str | None = None, in_place: Any = False,
            confirm: Any = False, timeout: Any = LONGEST_S, wait: Any = 0) -> dict:
    """
    Restore from the repository to ``target``: ``latest`` (the end of the
    archive), ``immediate`` (the newest backup's end), a time
    ``'YYYY-MM-DD HH:MM:SS'`` (UTC unless a zone is given) or a restore
    point's name. By default into a new instance ``name`` beside the
    cluster, on ``host`` (a PostgreSQL node; default a replica): promoted,
    on its own socket under ``pgha:lookup:pgbackrest:restore_dir``, the
    live cluster untouched (``salt <host> pgha_backup.query_restored`` to
    read it, ``pgha_backup.drop_restored`` to remove it).
    ``in_place=True confirm=True``: the whole cluster back to the target
    (Patroni stopped everywhere, its keys cleared in etcd, the node that
    led restored and promoted, a full backup of the new timeline, the
    others rebuilt; their old data moved aside). Refused, nothing changed,
    without ``confirm=True``, or when the repository cannot reach the
    target (before the first backup, after the last archived WAL).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.restore target='2026-12-04 10:41:07'
        salt-run pgha.restore target=before-migration host=postgres03 name=before-migration
        salt-run pgha.restore target='2026-12-04 10:41:07' in_place=True confirm=True
    """
    chosen = __utils__["pgha_restore.target_of"](target)
    whole = __utils__["pgha_args.flag"](in_place, "in_place")
    confirmed = __utils__["pgha_args.flag"](confirm, "confirm")
    limit = _seconds(timeout, "timeout", minimum=60)
    if whole and not confirmed:
        raise ValueError(__utils__["pgha_restore.refused"]())
    if whole and (host is not None or name is not None):
        raise ValueError("host and name are for a restore into a new instance; in place, the cluster's own nodes "
                         "are restored")
    label = __utils__["pgha_restore.name_of"](name)
    args = {"target": chosen.text, "in_place": whole, "host": host, "name": None if whole else label}

    def act() -> dict:
        reach = _reach()
        facts = __utils__["pgha_backups.facts"](reach)
        if whole:
            return __utils__["pgha_restore.in_place"](reach, chosen, facts, limit)
        return __utils__["pgha_restore.into_new"](reach, chosen, host, label, facts, limit)

    return _locked("pgha.restore", args, wait, act)


@_one_line
def restore_drill(mode: str = "point", host: str | None = None, keep: Any = False, timeout: Any = 1800,
                  wait: Any = 0) -> dict:
    """
    Prove a restore (``_utils/pgha_restore_drill.py``). ``mode=point``: a
    writer commits numbered rows, a restore point is made (with the
    checksum of the rows before it), the writer goes on, the drill's table
    is dropped; the point is restored into a new instance (on ``host``):
    ok when the checksum matches, no later row is there, ``pgbackrest
    verify`` and ``pg_amcheck`` find nothing. ``mode=latest``: every
    PostgreSQL node killed, the end of the archive restored, the
    acknowledged writes it lacks counted (``lost_on_total_loss``), the
    cluster started again. ``mode=repo-outage``: the repository's server
    stopped while the writer writes until archiving is reported failing,
    started again, the queue archived, the end of the archive restored:
    ok when every acknowledged write is there. The restored instance is
    removed unless ``keep=True``. JSON report and picture in
    ``pgha:drill:report_dir``.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.restore_drill --out=json
        salt-run pgha.restore_drill mode=latest
        salt-run pgha.restore_drill mode=repo-outage
    """
    chosen = __utils__["pgha_args.choice"](mode, "mode", DRILL_MODES)
    kept = __utils__["pgha_args.flag"](keep, "keep")
    limit = _seconds(timeout, "timeout", minimum=60)
    if host is not None and host not in _cluster().pg_nodes:
        raise ValueError(f"host must be a PostgreSQL node ({', '.join(_cluster().pg_nodes)}), got {host!r}")
    drill = __utils__["pgha_runner.restore_driller"]()
    return _locked("pgha.restore_drill", {"mode": chosen, "host": host}, wait,
                   lambda: drill(_reach(), chosen, host, kept, limit))


def _monitor_node():
    monitor = _cluster().monitor
    if not monitor.prometheus_url:
        raise CommandExecutionError("no node has the role monitor: Prometheus and Alertmanager are not the "
                                    "formula's here (docs/how-to/monitoring.md)")
    return monitor


@_one_line
def alerts() -> dict:
    """
    The monitor node's view: the alerts Alertmanager has active now and
    Prometheus's targets with their health. ``ok`` false (exit 1) when an
    alert fires or a target is not up.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.alerts
        salt-run pgha.alerts --out=json
    """
    monitor = _monitor_node()
    try:
        firing = __utils__["pgha_alerts.firing"](monitor.alertmanager_url)
        found = __utils__["pgha_alerts.targets"](monitor.prometheus_url)
    except RuntimeError as exc:
        raise CommandExecutionError(str(exc)) from None
    problems = __utils__["pgha_alerts.targets_problems"](found, monitor.jobs)
    result = {"ok": not firing and not problems, "prometheus": monitor.prometheus_url,
              "alertmanager": monitor.alertmanager_url, "firing": firing, "targets": len(found),
              "targets_up": sum(1 for t in found if t["health"] == "up"), "problems": problems}
    return _failed(result)


@_one_line
def monitor_ready(timeout: Any = 120) -> dict:
    """
    The orchestration's gate: every scrape target of the model (each
    exporter, Patroni, etcd, HAProxy) known to Prometheus and up, within
    ``timeout`` seconds; the alerts firing then, and where Prometheus and
    Alertmanager listen. Nothing to do without a monitor node.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.monitor_ready timeout=120
    """
    bound = __utils__["pgha_args.seconds"](timeout, "timeout")
    monitor = _cluster().monitor
    if not monitor.prometheus_url:
        return {"ok": True, "comment": "no monitor node: nothing to check"}
    deadline = time.monotonic() + bound
    _, problems = __utils__["pgha_alerts.check_targets"](monitor.prometheus_url, monitor.jobs)
    while problems and time.monotonic() < deadline:
        time.sleep(1)
        _, problems = __utils__["pgha_alerts.check_targets"](monitor.prometheus_url, monitor.jobs)
    count = sum(len(job["targets"]) for job in monitor.jobs)
    result = {"ok": not problems, "prometheus": monitor.prometheus_url, "alertmanager": monitor.alertmanager_url,
              "targets": count, "problems": problems}
    if not problems:
        try:
            result["firing"] = len(__utils__["pgha_alerts.firing"](monitor.alertmanager_url))
        except RuntimeError as exc:
            result.update(ok=False, problems=[str(exc)])
    result["comment"] = (f"{count} targets up; {result.get('firing')} alerts firing" if result["ok"]
                         else f"not every target up within {bound:.0f} s: " + "; ".join(result["problems"]))
    return _failed(result)
