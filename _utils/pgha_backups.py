"""
The cluster's backups as the runner sees and takes them: what the
repository holds (pgBackRest's ``info`` on the backup node) and how the
leader's archiving goes (``pg_stat_archiver``), summed up for
``salt-run pgha.backups``, judged for ``pgha.check`` and ``pgha.status``;
the orchestration's stage that makes the repository ready (the stanza, a
check that WAL reaches it, the first full backup); one backup on demand.

Plain Python acting through ``pgha_reach.Reach``; reached as
``__utils__["pgha_backups.<function>"]``.
"""

from __future__ import annotations

import time
from typing import Any

from salt.exceptions import CommandExecutionError

# A segment that waits this much longer than archive_timeout to be archived: archiving is stuck.
STUCK_SLACK_S = 60
# pgBackRest's stanza status codes that mean "nothing there yet".
NO_STANZA = (1, 3)


def _node(reach: Any) -> str:
    backup = reach.cluster.backup
    if not backup.enabled:
        raise CommandExecutionError("the cluster has no backup node: give a node the role backup in pgha:nodes "
                                    "(docs/how-to/backup.md)")
    return backup.node


def facts(reach: Any, now: float | None = None) -> dict:
    """
    What the repository holds and how archiving goes: the stanza's status,
    every backup (label, type, start, stop, duration, size, repository
    size, WAL range), the archive's WAL range, the leader's archiver and
    the newest backup's age in seconds.
    """
    now = time.time() if now is None else now
    node = _node(reach)
    stanza = reach.call(node, "pgha_backup.info", wait=180) or {}
    leader = reach.leader()
    archiver = None
    if leader:
        try:
            archiver = reach.call(leader["name"], "pgha_backup.archiver", wait=60)
        except CommandExecutionError as exc:
            archiver = {"error": str(exc)}
    backups = [_backup_entry(entry) for entry in stanza.get("backup", [])]
    archive = stanza.get("archive") or []
    status = stanza.get("status") or {"code": 1, "message": "missing stanza path"}
    newest = max((entry["stop"] for entry in backups), default=None)
    return {
        "stanza": reach.cluster.backup.stanza, "node": node, "status": status.get("message"),
        "status_code": status.get("code"), "backups": backups,
        "archive": {"min": archive[-1].get("min") if archive else None, "max": archive[-1].get("max") if archive
                    else None},
        "leader": leader["name"] if leader else None, "archiver": archiver,
        "newest_backup_age_s": round(now - newest, 1) if newest else None,
        "repository_size": sum(entry["repository_size"] for entry in backups),
        "max_age_s": reach.cluster.backup.max_age_s, "archive_timeout_s": reach.cluster.backup.archive_timeout,
    }


def _backup_entry(entry: dict) -> dict:
    start, stop = entry["timestamp"]["start"], entry["timestamp"]["stop"]
    archive = entry.get("archive") or {}
    return {"label": entry["label"], "type": entry["type"], "start": start, "stop": stop,
            "duration_s": stop - start, "size": entry["info"]["size"],
            "repository_size": entry["info"]["repository"]["delta"],
            "wal_start": archive.get("start"), "wal_stop": archive.get("stop"),
            "lsn_start": (entry.get("lsn") or {}).get("start"), "error": entry.get("error", False)}


def problems(data: dict) -> list[str]:
    """What is wrong with the backups: no stanza, no backup, one too old, the leader's archiving failing."""
    found = []
    if data["status_code"] in NO_STANZA or data["status_code"] is None:
        return [f"backups: stanza {data['stanza']} not ready on {data['node']}: {data['status']}"]
    if data["status_code"] not in (0, 4):  # 4: a backup is running
        found.append(f"backups: stanza {data['stanza']}: {data['status']}")
    age, bound = data["newest_backup_age_s"], data["max_age_s"]
    if age is None:
        found.append(f"backups: the repository on {data['node']} holds no backup")
    elif bound is not None and age > bound:
        found.append(f"backups: the newest backup is {age / 3600:.1f} h old; the schedule allows "
                     f"{bound / 3600:.1f} h (pgha:backup:schedule, max_age_hours)")
    archiver = data["archiver"]
    if isinstance(archiver, dict) and archiver.get("error"):
        found.append(f"backups: the leader's archiver cannot be read: {archiver['error']}")
    elif isinstance(archiver, dict) and _failing(archiver):
        found.append(f"backups: WAL archiving fails on {data['leader']}: {archiver['failed_count']} failures, the "
                     f"last on {archiver['last_failed_wal']}; the segments wait in pg_wal until it works")
    elif isinstance(archiver, dict) and _stuck(archiver, data["archive_timeout_s"]):
        found.append(f"backups: WAL archiving is stuck on {data['leader']}: {archiver['waiting']} segments wait, "
                     f"the oldest for {archiver['oldest_waiting_s']} s")
    return found


def _stuck(archiver: dict, archive_timeout: int) -> bool:
    """Segments wait longer than archiving takes (archive_timeout and a minute for a busy repository)."""
    oldest = archiver.get("oldest_waiting_s")
    return oldest is not None and oldest > archive_timeout + STUCK_SLACK_S


def _failing(archiver: dict) -> bool:
    """The leader's archiving fails now: its last failure is more recent than its last success."""
    failed, archived = archiver.get("last_failed_time"), archiver.get("last_archived_time")
    return failed is not None and (archived is None or failed >= archived)


def line(data: dict, now: float | None = None) -> str:
    """One line for ``pgha.status``: the newest backup and how archiving goes."""
    now = time.time() if now is None else now
    if data["status_code"] in NO_STANZA:
        return f"backups: stanza {data['stanza']} not created on {data['node']} ({data['status']})"
    newest = data["backups"][-1] if data["backups"] else None
    text = (f"newest {newest['type']} {newest['label']}, {_age(data['newest_backup_age_s'])} old"
            if newest else "no backup yet")
    archiver = data["archiver"] if isinstance(data["archiver"], dict) else {}
    if archiver.get("error"):
        state = "archiver unreadable"
    elif _failing(archiver):
        state = f"ARCHIVING FAILS ({archiver['failed_count']} failures, last {archiver['last_failed_wal']})"
    elif _stuck(archiver, data["archive_timeout_s"]):
        state = f"ARCHIVING STUCK ({archiver['waiting']} segments wait, the oldest {archiver['oldest_waiting_s']} s)"
    else:
        state = f"archived up to {archiver.get('last_archived_wal') or data['archive']['max'] or 'nothing yet'}"
    return f"backups: {text}; {state} (repository on {data['node']}, {len(data['backups'])} backup{'' if len(data['backups']) == 1 else 's'})"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def table(data: dict) -> str:
    """``salt-run pgha.backups``: every backup, then the archive and the leader's archiver."""
    rows = [("label", "type", "start (UTC)", "took", "size", "in repo", "WAL start", "WAL stop")]
    for entry in data["backups"]:
        rows.append((entry["label"], entry["type"], time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry["start"])),
                     f"{entry['duration_s']} s", _size(entry["size"]), _size(entry["repository_size"]),
                     entry["wal_start"] or "-", entry["wal_stop"] or "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [f"stanza {data['stanza']} on {data['node']}: {data['status']}"]
    lines += ["  ".join(str(value).ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    archiver = data["archiver"] if isinstance(data["archiver"], dict) else {}
    lines.append(f"archive: {data['archive']['min'] or '-'} .. {data['archive']['max'] or '-'}; "
                 f"repository {_size(data['repository_size'])}")
    if archiver and not archiver.get("error"):
        lines.append(f"leader {data['leader']}: {archiver['archived_count']} archived, last "
                     f"{archiver['last_archived_wal'] or '-'}; {archiver['failed_count']} failed"
                     + (f", last {archiver['last_failed_wal']}" if archiver["failed_count"] else ""))
    lines.append(f"newest backup: {_age(data['newest_backup_age_s'])} old"
                 + (f" (allowed: {_age(data['max_age_s'])})" if data["max_age_s"] else ""))
    return "\n".join(lines)


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def take(reach: Any, kind: str, timeout: float) -> dict:
    """One backup of ``kind`` now, on the backup node (from a standby when the pillar says so and one answers)."""
    node = _node(reach)
    taken = reach.call(node, "pgha_backup.backup", type=kind, timeout=timeout, wait=int(timeout) + 60)
    return dict(taken, ok=True, node=node)


def ready(reach: Any, timeout: float) -> dict:
    """
    The orchestration's stage ``pgha-orch-backup-ready`` (the runner has
    restarted the members whose archiving waited on a restart): the
    stanza created (a matching one kept); ``pgbackrest check``
    on the backup node (every PostgreSQL node reached, a segment switched
    on the leader and found in the repository): the gate; a full backup
    when the repository holds none. Nothing to do without a backup node.
    """
    if not reach.cluster.backup.enabled:
        return {"ok": True, "comment": "no backup node: nothing to do"}
    node = reach.cluster.backup.node
    result: dict = {"ok": False, "node": node, "stanza": reach.cluster.backup.stanza}
    result["stanza_create"] = reach.call(node, "pgha_backup.stanza_create", wait=int(timeout) + 60)
    deadline = time.monotonic() + timeout
    while True:
        try:
            result["check"] = reach.call(node, "pgha_backup.check", timeout=timeout, wait=int(timeout) + 60)
            break
        except CommandExecutionError as exc:
            if time.monotonic() > deadline:
                raise CommandExecutionError(f"pgbackrest check on {node} fails after {timeout:.0f} s: {exc}") from None
            time.sleep(3)
    if not (reach.call(node, "pgha_backup.info", wait=180) or {}).get("backup"):
        result["first_backup"] = take(reach, "full", max(timeout, 3600))
    result["ok"] = True
    return result
