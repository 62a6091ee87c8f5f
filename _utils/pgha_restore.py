"""
Getting data back from the repository: a restore target read and checked
against what the repository holds (before anything is touched), a restore
into a new instance beside the live cluster (the default: the live cluster
is not touched), and the whole cluster restored in place (only when
confirmed: Patroni stopped everywhere, its keys cleared in etcd, the node
that led restored to the target and promoted, a new full backup of the new
timeline, the others rebuilt from it; their old data directories moved
aside, never deleted).

Plain Python acting through ``pgha_reach.Reach``; reached as
``__utils__["pgha_restore.<function>"]``.
"""

from __future__ import annotations

import base64
import datetime
import re
import time
from typing import Any, NamedTuple

from salt.exceptions import CommandExecutionError

_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}(?::?\d{2})?)?")
_POINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")
LOCK_KEY = "pgha-lock"


class Target(NamedTuple):
    """A restore target: pgBackRest's type (name, time, immediate, default), its value, its time (epoch) if any."""
    type: str
    value: str | None
    at: float | None
    text: str


def target_of(text: Any) -> Target:
    """
    ``latest`` (the end of the archive), ``immediate`` (the newest backup's
    end), a time ``YYYY-MM-DD HH:MM[:SS][+zone]`` (UTC unless a zone is
    given) or a restore point's name (``pg_create_restore_point``).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("target must be latest, immediate, a time such as '2026-12-04 10:41:07' (UTC unless a "
                         "zone is given) or a restore point's name")
    text = text.strip()
    if text in ("latest", "immediate"):
        return Target("default" if text == "latest" else "immediate", None, None, text)
    match = _TIME.fullmatch(text)
    if match:
        zone = match.group(3) or "+00:00"
        zone = "+00:00" if zone == "Z" else zone if ":" in zone or len(zone) == 3 else zone[:3] + ":" + zone[3:]
        zone = zone + ":00" if len(zone) == 3 else zone
        clock = match.group(2) if match.group(2).count(":") == 2 else match.group(2) + ":00"
        try:
            moment = datetime.datetime.fromisoformat(f"{match.group(1)}T{clock}{zone}")
        except ValueError as exc:
            raise ValueError(f"target {text!r} is not a valid time ({exc})") from None
        utc = moment.astimezone(datetime.UTC)
        return Target("time", utc.strftime("%Y-%m-%d %H:%M:%S.%f+00"), utc.timestamp(), text)
    if _POINT.fullmatch(text):
        return Target("name", text, None, text)
    raise ValueError(f"target {text!r} is neither latest, immediate, a time (YYYY-MM-DD HH:MM:SS) nor a restore "
                     "point's name (letters, digits, _ . : -)")


def name_of(name: Any, now: float | None = None) -> str:
    """The restored instance's name: given (lowercase letters, digits, _ -), else restore-<UTC time>."""
    if name is None:
        return time.strftime("restore-%Y%m%d-%H%M%S", time.gmtime(now))
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name must be lowercase letters, digits, _ and - (at most 41), got {name!r}")
    return name


def problems(target: Target, facts: dict, now: float | None = None) -> list[str]:
    """
    Why the repository cannot give ``target`` back (``pgha_backups.facts``):
    no backup; a time before the first backup ended, in the future, or
    after the last WAL the leader archived.
    """
    now = time.time() if now is None else now
    backups = [entry for entry in facts["backups"] if not entry.get("error")]
    if not backups:
        return [(f"the repository on {facts['node']} holds no backup of stanza {facts['stanza']} "
                "(salt-run pgha.backup type=full takes one)")]
    if target.type != "time":
        return []
    first = min(backups, key=lambda entry: entry["stop"])
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(first["stop"]))
    if target.at < first["stop"]:
        return [(f"target {target.text} is before the first backup ended ({first['label']}, {stamp}): nothing "
                "older can be restored")]
    if target.at > now:
        return [f"target {target.text} is in the future"]
    archiver = facts.get("archiver") if isinstance(facts.get("archiver"), dict) else {}
    last = archiver.get("last_archived_time")
    if last is not None and target.at > last and not archiver.get("in_recovery", False):
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last))
        return [(f"target {target.text} is after the last archived WAL ({archiver.get('last_archived_wal')}, "
                f"archived {when}): the archive cannot reach it yet (wait for archive_timeout, or use latest)")]
    return []


def _host(reach: Any, host: str | None) -> str:
    """Where a new instance goes: ``host`` (a PostgreSQL node), else a running replica, else the first node."""
    nodes = reach.cluster.pg_nodes
    if host is not None:
        if host not in nodes:
            raise ValueError(f"host must be a PostgreSQL node ({', '.join(nodes)}), got {host!r}")
        return host
    replicas = [m["name"] for m in reach.members() if m["role"] != "leader" and m["state"] in ("streaming", "running")
                and m["name"] in nodes]
    return min(replicas) if replicas else nodes[0]


def into_new(reach: Any, target: Target, host: str | None, name: str, facts: dict, timeout: float) -> dict:
    """
    The target restored into a new instance ``name`` on ``host`` (promoted,
    on its own socket; the live cluster untouched). Refused, touching
    nothing, when the repository cannot give the target back.
    """
    found = problems(target, facts)
    if found:
        raise CommandExecutionError("; ".join(found) + "; nothing was restored")
    chosen = _host(reach, host)
    try:
        restored = reach.call(chosen, "pgha_backup.restore", name=name, target_type=target.type, target=target.value,
                              timeout=timeout, wait=int(timeout) + 120)
    except CommandExecutionError as exc:
        raise CommandExecutionError(_explained(exc, target)) from None
    return dict(restored, ok=True, target=target.text, target_type=target.type)


def _explained(exc: Exception, target: Target) -> str:
    """A failed restore, with the cause a DBA looks for first."""
    text = str(exc)
    if "recovery ended before configured recovery target was reached" in text or "recovery target" in text:
        what = f"restore point {target.value!r}" if target.type == "name" else f"target {target.text}"
        return (f"{what} was not reached: the archive holds no such point after the backup restored from "
                f"({text})")
    if "unable to find backup set" in text:
        return f"no backup precedes target {target.text} ({text})"
    if "cipher" in text.lower() or "unable to load info file" in text:
        return f"the repository cannot be read: is secrets:backup_cipher_password the one it was made with? ({text})"
    return text


# ---------------------------------------------------------------------------
# the whole cluster, in place
# ---------------------------------------------------------------------------


REFUSED = ("restoring the cluster in place stops Patroni on every node, clears the cluster's keys in etcd and "
           "replaces every data directory (the old ones moved aside); give confirm=True to do it. Nothing was "
           "changed")


def refused() -> str:
    """Why an in-place restore without confirm=True is refused (nothing changed)."""
    return REFUSED


def _patroni_keys(etcd: Any, prefix: str) -> list[str]:
    end = prefix.encode()
    answer = etcd.post("/v3/kv/range", {"key": base64.b64encode(end).decode(),
                                        "range_end": base64.b64encode(end[:-1] + bytes([end[-1] + 1])).decode(),
                                        "keys_only": True})
    keys = [base64.b64decode(kv["key"]).decode() for kv in answer.get("kvs") or []]
    return [key for key in keys if key != prefix + LOCK_KEY]


def in_place(reach: Any, target: Target, facts: dict, timeout: float) -> dict:
    """
    The whole cluster back to ``target``: refused first when the repository
    cannot give it; then Patroni stopped on every node (replicas first),
    the cluster's keys cleared in etcd (the lock's kept), the node that led
    (the bootstrap leader when none leads) restored to the target and
    promoted, Patroni started on it (it leads the cluster anew), a full
    backup of the new timeline taken, and the other nodes' data moved aside
    and rebuilt from it by Patroni. Returns the steps and the times.
    """
    found = problems(target, facts)
    if found:
        raise CommandExecutionError("; ".join(found) + "; nothing was changed")
    cluster = reach.cluster
    leader = reach.leader()
    first = leader["name"] if leader else cluster.bootstrap_leader
    others = [name for name in cluster.pg_nodes if name != first]
    steps: list[str] = []
    started = time.monotonic()
    wait = int(timeout) + 120
    for name in others + [first]:
        reach.call(name, "pgha_service.stop", "patroni", wait=wait)
    steps.append(f"Patroni stopped on {', '.join(others + [first])}")
    etcd = reach.etcd("root")
    keys = _patroni_keys(etcd, cluster.etcd.prefix)
    for key in keys:
        etcd.post("/v3/kv/deleterange", {"key": base64.b64encode(key.encode()).decode()})
    steps.append(f"{len(keys)} keys of the cluster cleared in etcd")
    restored = reach.call(first, "pgha_backup.restore_in_place", target_type=target.type, target=target.value,
                          timeout=timeout, wait=wait)
    steps.append(f"{first} restored to {target.text} and promoted (timeline {restored.get('timeline')})")
    reach.call(first, "pgha_service.start", "patroni", wait=wait)
    reach.call(first, "patroni.wait_leader", member=first, timeout=int(timeout), wait=wait)
    steps.append(f"Patroni started on {first}: it leads")
    backup = reach.call(cluster.backup.node, "pgha_backup.backup", type="full", from_standby=False,
                        timeout=max(timeout, 3600), wait=max(wait, 3700))
    steps.append(f"full backup {backup['label']} of the new timeline")
    for name in others:
        aside = reach.call(name, "pgha_backup.move_data_aside", wait=wait)
        reach.call(name, "pgha_service.start", "patroni", wait=wait)
        steps.append(f"{name}: old data moved to {aside['moved_to']}, rebuilt by Patroni")
    healthy = reach.call(first, "patroni.wait_healthy", members=len(cluster.pg_nodes),
                         max_lag=cluster.gates.max_lag_bytes, timeout=int(timeout), wait=wait)
    steps.append(f"healthy: {healthy.get('leader')} leads on timeline {healthy.get('timeline')}")
    return {"ok": True, "target": target.text, "leader": first, "steps": steps, "backup": backup["label"],
            "restore_s": restored.get("restore_s"), "took_s": round(time.monotonic() - started, 3)}
