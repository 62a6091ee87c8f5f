"""
What the pgha runner's modules share (``_runners/pgha.py``, the operator's
view and the cluster's operations; ``_runners/pgha_data.py``, getting data
back): the cluster's model built on the master from its own pillar, the
cluster as the master reaches it, the cluster's lock taken for a command,
and the drill's engine bound for use anywhere. The
runner modules pass in what only they hold (their options, the master's
pillar, their context); everything here runs in the utilities' own loader
context, so callbacks made here may be called from any other utility.
Salt's loader gives utilities no ``__utils__``: the others are reached
here as plain Python, from beside this file (``pgha_model.sibling``).
Reached as ``__utils__["pgha_runner.<function>"]``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

_MODEL: list = []


def _util(name: str) -> Any:
    """A module of ``_utils`` beside this one (the model's loader of its siblings)."""
    if not _MODEL:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pgha_model.py")
        spec = importlib.util.spec_from_file_location("pgha_model_of_the_runner", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODEL.append(module)
    return _MODEL[0] if name == "pgha_model" else _MODEL[0].sibling(name)


def model(opts: dict, pillar: dict) -> Any:
    """The cluster's model as the master sees it (``pillar``: its own, every secret), from its file roots' defaults."""
    given = (pillar or {}).get("pgha")
    if not isinstance(given, dict) or not given.get("nodes"):
        raise CommandExecutionError("pgha: the master's pillar has no pgha:nodes; does the pillar top target the master?")
    try:
        defaults = _util("pgha_model").defaults_in((opts.get("file_roots") or {}).get("base", []))
        return _util("pgha_model").build(defaults, given, opts["id"], "none")
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from None


def reach(cluster: Any, conf_file: str) -> Any:
    """The cluster as the master reaches it (``pgha_reach.Reach``): its minions through the local client."""
    page, etcd = _util("pgha_cluster").haproxy_stats_page, _util("pgha_lock").client_of
    return _util("pgha_reach").reach(
        cluster=cluster, call=_util("pgha_reach").caller(conf_file),
        api=_util("pgha_cluster").patroni_api_of(cluster), stats=lambda: page(cluster),
        rules=_util("pgha_cluster").rules(), etcd=lambda login: etcd(cluster, login))


def status_data(reach: Any) -> dict:
    """
    What ``pgha.status`` shows and ``pgha.check`` judges: the members, the
    leader, etcd's health, HAProxy's servers, the lock's holder and, with a
    backup node, the backups (or why they cannot be read); with a monitor
    node, the alerts firing now (or why Alertmanager cannot be read).
    """
    cluster = reach.cluster
    data = _util("pgha_cluster").cluster_status(
        reach.api, lambda: reach.call(cluster.etcd_nodes[0], "etcd_cluster.health", wait=30),
        lambda: reach.haproxy(None))
    data = dict(data, lock=_util("pgha_lock").holder_of(cluster))
    if cluster.backup.enabled:
        try:
            data["backups"] = _util("pgha_backups").facts(reach)
        except CommandExecutionError as exc:
            data["backups"] = {"error": str(exc)}
    if cluster.monitor.alertmanager_url:
        alerts = _util("pgha_alerts")
        try:
            data["alerts"] = alerts.firing(cluster.monitor.alertmanager_url)
        except alerts.MonitorError as exc:
            data["alerts"] = {"error": str(exc)}
    return data


def alerts_line(data: dict) -> str | None:
    """The status table's line of the alerts firing now (None without a monitor node)."""
    found = data.get("alerts")
    if found is None:
        return None
    if isinstance(found, dict):
        return f"alerts: cannot read Alertmanager: {found['error']}"
    names = ", ".join(f"{a['alert']} ({a['on']})" for a in found)
    return f"alerts: {len(found)} firing" + (f": {names}" if names else "")


def backup_problems(data: dict) -> list[str]:
    """The backups' problems in a status (none without a backup node), or that they cannot be read."""
    found = data.get("backups")
    if found is None:
        return []
    return [f"backups: cannot read the repository: {found['error']}"] if "error" in found \
        else _util("pgha_backups").problems(found)


def take(cluster: Any, master: str, command: str, args: dict, wait: Any = 0) -> Any:
    """The cluster's lock for ``command`` (shared when this process holds it), or one line naming its holder."""
    holder = _util("pgha_lock").holder_record(command, args, master)
    etcd, key = _util("pgha_lock").of(cluster)
    try:
        return _util("pgha_lock").acquire(etcd, key, holder, cluster.lock.ttl,
                                              _util("pgha_args").seconds(wait or 0, "wait", minimum=0))
    except CommandExecutionError as exc:
        if getattr(exc, "holder", None) is not None:
            raise CommandExecutionError(f"{exc}; nothing was done (wait=<seconds> to wait for it)") from None
        raise CommandExecutionError(f"cannot take the cluster's lock in etcd: {exc}") from None


def driller() -> tuple[Callable[..., Any], Callable[..., dict]]:
    """
    ``options(cluster, given)``: a drill's options, each argument checked; ``drill(reach, mode, options)``:
    one drill through the engine, its report (and picture) written when asked.
    """
    check, make, run = _util("pgha_args").drill_options, _util("pgha_drill").options, _util("pgha_drill").run
    fault, write = _util("pgha_faults").fault, _util("pgha_report").write

    def options(cluster: Any, given: dict) -> Any:
        return make(cluster, check(given, cluster))

    def drill(reach: Any, mode: str, chosen: Any, alerts: bool = False) -> dict:
        """``alerts``: a failover drill, which measures the alert its mode expects (pgha_alerts.watched)."""
        kept: list = []

        def once() -> dict:
            result, records = run(reach, fault(mode), chosen, _util("pgha_timeline").timeline)
            kept.extend(records)
            return result

        monitoring = _util("pgha_monitoring")
        result = _util("pgha_alerts").watched(reach.cluster, mode, once, monitoring.EXPECTED, monitoring.REQUIRED) \
            if alerts else once()
        return write(chosen.report_dir, result, kept) if chosen.report_dir and kept else result

    return options, drill


def restore_driller() -> Callable[..., dict]:
    """
    ``drill(reach, mode, host, keep, timeout)``: one restore drill
    (``pgha_restore_drill``) with its parts (the failover drill's writer and
    table, the backups' and restores' modules, the probe role's dsn), its
    report (and picture) written in the drill's report directory.
    """
    engine, writer = _util("pgha_restore_drill"), _util("pgha_drill")

    def drill(reach: Any, mode: str, host: str | None, keep: bool, timeout: float) -> dict:
        parts = {"writer": writer.Writer, "table_ddl": writer.TABLE_DDL, "backups": _util("pgha_backups"),
                 "restore": _util("pgha_restore"), "probe_dsn": writer.probe_dsn(reach.cluster)}
        result, records = engine.run(reach, mode, host, keep, timeout, parts)
        directory = reach.cluster.drill.report_dir
        if not directory or not result["marks"].get("fault"):
            return result
        title = f"pgha restore drill: {mode}, restored on {result.get('restored_on')}"
        origin = "the table was dropped" if mode == "point" else "every PostgreSQL node was killed"
        return _util("pgha_report").write(directory, result, records, kind="restore-drill", title=title, origin=origin)

    return drill
