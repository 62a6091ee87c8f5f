"""
pgBackRest on a pgha host, as the formula drives it: on the backup node
(role ``backup``) the repository's side (the stanza, checks, backups,
``info``, ``verify``), on a PostgreSQL node the archive's side (PostgreSQL's
archiver) and restores into a new instance beside the live one. Every
command runs as pgBackRest's user of the host (the repository's owner on
the backup node, postgres on a PostgreSQL node) with the formula's
configuration (``pgha:lookup:pgbackrest:config_file``); the runner's
backup commands (``salt-run pgha.backups``, ``pgha.backup``,
``pgha.restore``, ``pgha.restore_drill``) call these.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shutil
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_backup"

BACKUP_TYPES = ("full", "diff", "incr")
NO_STANDBY = 56  # pgBackRest's exit code when no standby answers a backup-standby backup
LOCK_HELD = 50  # "unable to acquire lock": an archive-push reaching the repository holds it
_BACKUP_SET = re.compile(r"restore backup set (\S+?),")  # pgBackRest's line naming a restore's backup


def __virtual__():
    return __virtualname__


def _map() -> dict:
    if "pgha_backup.map" not in __context__:
        __context__["pgha_backup.map"] = __salt__["pgha_config.mapdata"]()
    return __context__["pgha_backup.map"]


def _tool(name: str):
    """A function of the shared pgBackRest code (_utils/pgha_pgbackrest.py)."""
    return __utils__[f"pgha_pgbackrest.{name}"]


def _role() -> str:
    return _tool("side")(_map())


def _user() -> str:
    return _tool("user")(_map())


def _env() -> dict:
    return _tool("env")(_map())


def _run(cmd: list[str], timeout: float) -> dict:
    return __salt__["cmd.run_all"](cmd, python_shell=False, runas=_user(), env=_env(), timeout=timeout,
                                   ignore_retcode=True, output_loglevel="debug")


def _pgbackrest(*args: str, timeout: float = 3600, ok_codes: tuple = (0,)) -> dict:
    """One pgBackRest command as this host's pgBackRest user; its exit code, output and how long it took."""
    started = time.monotonic()
    ret = _run(_tool("command")(_map(), *args), timeout)
    took = round(time.monotonic() - started, 3)
    if ret["retcode"] not in ok_codes:
        raise CommandExecutionError(f"pgha_backup: pgbackrest {' '.join(args)} on {_map()['id']} failed "
                                    f"({ret['retcode']}): {_tool('last_error')(ret)}")
    return {"retcode": ret["retcode"], "stdout": ret["stdout"], "stderr": ret["stderr"], "took_s": took}


# ---------------------------------------------------------------------------
# the backup node
# ---------------------------------------------------------------------------


def _on_backup_node(what: str) -> None:
    if _role() != "backup":
        raise CommandExecutionError(f"pgha_backup.{what} runs on the backup node ({_map()['backup']['node']})")


def info() -> dict:
    """
    The stanza as the repository has it (``pgbackrest info --output=json``):
    its status, backups and archive; ``{}`` when the stanza does not exist
    yet. On the backup node.

    CLI Example:

    .. code-block:: bash

        salt backup pgha_backup.info
    """
    _on_backup_node("info")
    ret = _pgbackrest("--output=json", "info", timeout=120)
    stanzas = json.loads(ret["stdout"] or "[]", strict=False)  # a wrong passphrase puts garbage in messages
    stanza = stanzas[0] if stanzas else {}
    for repo in stanza.get("repo") or []:
        why = _tool("unreadable")(str((repo.get("status") or {}).get("message")))
        if why:
            raise CommandExecutionError(f"pgha_backup: {why}")
    _export_newest(stanza)
    return stanza


def _export_newest(stanza: dict) -> None:
    """
    With monitoring on, the newest backup's end for the node exporter's
    textfile collector (``pgha_backup_newest_timestamp_seconds``: the rule
    BackupTooOld reads it), written whenever the repository is read.
    """
    cfg = _map()
    if not cfg["monitor"]["enabled"] or not stanza.get("backup"):
        return
    newest = max(entry["timestamp"]["stop"] for entry in stanza["backup"])
    directory = cfg["lookup"]["node_exporter"]["textfile_dir"]
    if not os.path.isdir(directory):  # the exporters' state makes it
        return
    text = ("# HELP pgha_backup_newest_timestamp_seconds When the repository's newest backup ended.\n"
            "# TYPE pgha_backup_newest_timestamp_seconds gauge\n"
            f'pgha_backup_newest_timestamp_seconds{{stanza="{cfg["backup"]["stanza"]}"}} {newest}\n')
    _tool("write_text")(os.path.join(directory, "pgha-backup.prom"), text)


def stanza_create(timeout: float = 300) -> dict:
    """
    Create the stanza (the repository's record of the cluster), waiting
    while an archive-push holds its lock; one that matches the cluster is
    kept. Fails, naming the cause, when the repository holds another
    cluster's stanza of that name. On the backup node.

    CLI Example:

    .. code-block:: bash

        salt backup pgha_backup.stanza_create
    """
    _on_backup_node("stanza_create")
    deadline = time.monotonic() + float(timeout)
    while True:  # an archive-push holds the stanza's lock for a moment: wait for it, within timeout
        held = time.monotonic() < deadline
        ret = _pgbackrest("stanza-create", timeout=float(timeout), ok_codes=(0, LOCK_HELD) if held else (0,))
        if ret["retcode"] == 0:
            return {"stanza": _map()["backup"]["stanza"], "took_s": ret["took_s"]}
        time.sleep(2)


def check(timeout: float = 300) -> dict:
    """
    ``pgbackrest check``: on the backup node, the repository, every
    PostgreSQL node it reaches and a WAL segment switched on the leader and
    found in the archive; on a PostgreSQL node, this node's configuration
    and (when it leads) its archiving. Fails with pgBackRest's error.

    CLI Example:

    .. code-block:: bash

        salt backup pgha_backup.check
    """
    ret = _pgbackrest("check", timeout=float(timeout))
    return {"ok": True, "host": _map()["id"], "took_s": ret["took_s"]}


def backup(type: str = "incr", from_standby: bool | None = None, timeout: float = 86400) -> dict:  # pylint: disable=redefined-builtin
    """
    Take one backup of ``type`` (full, diff or incr) now, from a standby
    when ``from_standby`` (default ``pgha:backup:from_standby``) and one
    answers, else from the leader; pgBackRest then expires what the
    retention no longer keeps. Returns the new backup's label, type, size
    (the database's), what it copied (``copied``: all of it for a full,
    the changed files otherwise), its size in the repository and how long
    it took. On the backup node.

    CLI Example:

    .. code-block:: bash

        salt backup pgha_backup.backup type=full
    """
    _on_backup_node("backup")
    if type not in BACKUP_TYPES:
        raise CommandExecutionError(f"pgha_backup.backup: type must be one of {', '.join(BACKUP_TYPES)} "
                                    f"(got {type!r})")
    standby = _map()["backup"]["from_standby"] if from_standby is None else bool(from_standby)
    before = {entry["label"] for entry in info().get("backup", [])}
    args = [f"--type={type}", "--backup-standby" if standby else "--no-backup-standby", "backup"]
    ret = _pgbackrest(*args, timeout=float(timeout), ok_codes=(0, NO_STANDBY) if standby else (0,))
    source = "standby" if standby else "leader"
    took = ret["took_s"]
    if ret["retcode"] == NO_STANDBY:
        log.warning("pgha_backup: no standby answers; the %s backup is taken from the leader", type)
        ret = _pgbackrest(f"--type={type}", "--no-backup-standby", "backup", timeout=float(timeout))
        source, took = "leader", round(took + ret["took_s"], 3)
    new = [entry for entry in info().get("backup", []) if entry["label"] not in before]
    if not new:
        raise CommandExecutionError("pgha_backup.backup: pgBackRest ended well but the repository lists no new "
                                    "backup")
    entry = new[-1]
    return {"label": entry["label"], "type": entry["type"], "from": source, "took_s": took,
            "size": entry["info"]["size"], "copied": entry["info"].get("delta", entry["info"]["size"]),
            "repository_size": entry["info"]["repository"]["delta"]}


def verify(timeout: float = 3600) -> dict:
    """
    ``pgbackrest verify``: every file of the repository's backups and
    archive read back and checked against its checksum. ``ok`` and what
    pgBackRest reported. On the backup node.

    CLI Example:

    .. code-block:: bash

        salt backup pgha_backup.verify
    """
    _on_backup_node("verify")
    ret = _pgbackrest("--log-level-console=info", "verify", timeout=float(timeout), ok_codes=(0, 1, 2, 3, 4, 5, 6, 7,
                                                                                              8, 9, 10, 11, 12, 13))
    text = (ret["stdout"] + "\n" + ret["stderr"]).strip()
    problems = [line.strip() for line in text.splitlines()
                if re.search(r"(ERROR|WARN):|invalid|missing", line) and "invalid: 0" not in line]
    return {"ok": ret["retcode"] == 0 and not problems, "problems": problems[:20], "took_s": ret["took_s"]}


# ---------------------------------------------------------------------------
# a PostgreSQL node: its archiver and restores beside the live instance
# ---------------------------------------------------------------------------


def _on_postgresql_node(what: str) -> None:
    if _role() != "postgresql":
        raise CommandExecutionError(f"pgha_backup.{what} runs on a PostgreSQL node")


def _psql(sql: str, socket_dir: str, port: int, database: str = "postgres", timeout: float = 60) -> list[list[str]]:
    """Rows of one query through a local socket, as pgBackRest's user (the superuser's password from its pgpass)."""
    ret = _run(_tool("psql_command")(_map(), sql, socket_dir, port, database), timeout)
    if ret["retcode"] != 0:
        raise CommandExecutionError(f"pgha_backup: query on {_map()['id']} failed: {_tool('last_error')(ret)}")
    return [line.split("\t") for line in ret["stdout"].splitlines() if line]


def archiver() -> dict:
    """
    PostgreSQL's archiver on this node (``pg_stat_archiver``): segments
    archived and failed, the last of each and when, the segments waiting to
    be archived (``waiting``, the oldest's age ``oldest_waiting_s``);
    whether this node is in recovery (a standby archives nothing). On a
    PostgreSQL node.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_backup.archiver
    """
    _on_postgresql_node("archiver")
    cfg = _map()
    rows = _psql("SELECT archived_count, coalesce(last_archived_wal, ''), "
                 "coalesce(extract(epoch FROM last_archived_time)::bigint::text, ''), failed_count, "
                 "coalesce(last_failed_wal, ''), coalesce(extract(epoch FROM last_failed_time)::bigint::text, ''), "
                 "pg_is_in_recovery(), current_setting('archive_mode'), "
                 "(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), "
                 "(SELECT coalesce(extract(epoch FROM now() - min(modification))::bigint::text, '') "
                 "FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), "
                 "'end' FROM pg_stat_archiver",  # a last column never empty: Salt strips the output's end
                 cfg["lookup"]["patroni"]["socket_dir"], cfg["postgresql"]["port"])
    row = rows[0]
    return {"archived_count": int(row[0]), "last_archived_wal": row[1] or None,
            "last_archived_time": int(row[2]) if row[2] else None, "failed_count": int(row[3]),
            "last_failed_wal": row[4] or None, "last_failed_time": int(row[5]) if row[5] else None,
            "in_recovery": row[6] == "t", "archive_mode": row[7], "waiting": int(row[8]),
            "oldest_waiting_s": int(row[9]) if row[9] else None}


def _restore_dir(name: str) -> str:
    return _tool("restore_dir")(_map(), name)


def _pg_ctl(*args: str, timeout: float = 120) -> dict:
    return _run([os.path.join(_map()["lookup"]["postgresql"]["bin_dir"], "pg_ctl"), *args], timeout)


def restore(name: str, target_type: str = "default", target: str | None = None, set_label: str | None = None,
            timeout: float = 3600) -> dict:
    """
    Restore the repository's backup into a new instance ``name`` beside the
    live one (``<lookup:pgbackrest:restore_dir>/<name>``), recovered to the
    target and promoted, then started on its own socket (no TCP port,
    archiving off, no synchronous standby: it never touches the live
    cluster or the archive). ``target_type``: name (a restore point), time
    (``YYYY-MM-DD HH:MM:SS+00``), lsn, immediate (the backup's end) or
    default (the end of the archive); ``set_label``: the backup to start
    from (default: pgBackRest's choice, the newest before the target).
    Returns where it is, how long the restore and the recovery took, the
    backup it came from and the WAL replayed. On a PostgreSQL node.

    CLI Example:

    .. code-block:: bash

        salt postgres02 pgha_backup.restore name=before-drop target_type=time target='2026-12-04 10:41:07+00'
    """
    _on_postgresql_node("restore")
    cfg = _map()
    args = _tool("restore_args")("restore", target_type, target)
    path = _restore_dir(name)
    if os.path.exists(path):
        raise CommandExecutionError(f"pgha_backup.restore: {path} exists: a restore named {name!r} is there "
                                    "(pgha_backup.drop_restored removes it)")
    os.makedirs(path, mode=0o700)
    owner = pwd.getpwnam(_user())
    os.chown(path, owner.pw_uid, owner.pw_gid)
    args = [f"--pg1-path={path}", "--archive-mode=off", *args]
    if set_label:
        args.append(f"--set={set_label}")
    started = time.monotonic()
    try:
        done = _pgbackrest("--log-level-console=info", *args, "restore", timeout=float(timeout))
    except CommandExecutionError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    restored_s = round(time.monotonic() - started, 3)
    chosen = _BACKUP_SET.search(done["stdout"] + done["stderr"])
    port = cfg["postgresql"]["port"]
    options = _tool("settings")(port, path, path, archive_mode="off", hot_standby="on", cluster_name="pgha-restore")
    ret = _pg_ctl("-D", path, "-l", f"{path}/restore.log", "-o", options, "-w", "-t", str(int(timeout)), "start",
                  timeout=float(timeout) + 30)
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            if ret["retcode"] != 0 or _psql("SELECT pg_is_in_recovery()", path, port)[0][0] != "t":
                break
        except CommandExecutionError:
            break  # it stopped: said below
        if time.monotonic() > deadline:
            raise CommandExecutionError(f"pgha_backup.restore: still recovering after {timeout} s ({path})")
        time.sleep(0.5)
    if ret["retcode"] != 0 or _pg_ctl("-D", path, "status", timeout=30)["retcode"] != 0:
        why = _tool("log_tail")(f"{path}/restore.log")
        shutil.rmtree(path, ignore_errors=True)
        raise CommandExecutionError(f"pgha_backup.restore: the restored instance stopped: {why} (its directory "
                                    "was removed)")
    recovered_s = round(time.monotonic() - started, 3)
    replayed = _psql("SELECT pg_last_wal_replay_lsn()::text, "
                     "(SELECT setting FROM pg_settings WHERE name = 'server_version_num')", path, port)[0]
    return {"name": name, "path": path, "socket_dir": path, "port": port, "restore_s": restored_s,
            "recovered_s": recovered_s, "replay_lsn": replayed[0] or None, "host": cfg["id"],
            "backup_label": chosen.group(1) if chosen else None}


def restore_in_place(target_type: str = "default", target: str | None = None, timeout: float = 3600) -> dict:
    """
    Restore this node's own data directory (Patroni stopped) to the target
    and promote it: pgBackRest's delta restore, then PostgreSQL started by
    hand until it has recovered and promoted, checkpointed and stopped, so
    that Patroni starts it as the new leader. Archiving stays on: the new
    timeline's history reaches the repository. Part of ``salt-run
    pgha.restore in_place=True confirm=True``; on a PostgreSQL node.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_backup.restore_in_place target_type=name target=before-migration
    """
    _on_postgresql_node("restore_in_place")
    cfg = _map()
    data_dir = cfg["lookup"]["patroni"]["data_dir"]
    _tool("refuse_running")(data_dir)
    args = ["--delta", *_tool("restore_args")("restore_in_place", target_type, target)]
    started = time.monotonic()
    _pgbackrest(*args, "restore", timeout=float(timeout))
    restored_s = round(time.monotonic() - started, 3)
    socket_dir, port = cfg["lookup"]["patroni"]["socket_dir"], cfg["postgresql"]["port"]
    log_file = os.path.join(cfg["lookup"]["pgbackrest"]["log_dir"], "restore-in-place.log")
    # the restored postgresql.conf is the one of the node the backup was taken on: this node's own settings
    # given here (its socket, no TCP until Patroni starts it, its archive_command, its hba and ident files)
    archive_command = _tool("archive_command")(cfg)
    options = _tool("settings")(port, socket_dir, data_dir, archive_command=f"'{archive_command}'")
    ret = _pg_ctl("-D", data_dir, "-l", log_file, "-o", options, "-w", "-t", str(int(timeout)), "start",
                  timeout=float(timeout) + 30)
    if ret["retcode"] != 0:
        raise CommandExecutionError(f"pgha_backup.restore_in_place: PostgreSQL did not start on the restored data: "
                                    f"{_tool('log_tail')(log_file)}")
    deadline = time.monotonic() + float(timeout)
    while _psql("SELECT pg_is_in_recovery()", socket_dir, port)[0][0] == "t":
        if time.monotonic() > deadline:
            raise CommandExecutionError(f"pgha_backup.restore_in_place: still recovering after {timeout} s")
        time.sleep(0.5)
    _psql("CHECKPOINT", socket_dir, port)
    timeline = _psql("SELECT timeline_id FROM pg_control_checkpoint()", socket_dir, port)[0][0]
    _pg_ctl("-D", data_dir, "-m", "fast", "-w", "-t", "120", "stop", timeout=150)
    return {"restore_s": restored_s, "recovered_s": round(time.monotonic() - started, 3), "timeline": int(timeline)}


def move_data_aside() -> dict:
    """
    Move this node's data directory aside (Patroni stopped), to
    ``<data_dir>.before-restore-<UTC time>``, and leave an empty one for
    Patroni to rebuild the replica in. Nothing is deleted. Part of the
    in-place restore; on a PostgreSQL node.

    CLI Example:

    .. code-block:: bash

        salt postgres02 pgha_backup.move_data_aside
    """
    _on_postgresql_node("move_data_aside")
    data_dir = _map()["lookup"]["patroni"]["data_dir"]
    _tool("refuse_running")(data_dir)
    aside = data_dir + time.strftime(".before-restore-%Y%m%d-%H%M%S", time.gmtime())
    os.rename(data_dir, aside)
    os.makedirs(data_dir, mode=0o700)
    owner = pwd.getpwnam(_user())
    os.chown(data_dir, owner.pw_uid, owner.pw_gid)
    return {"moved_to": aside}


def query_restored(name: str, sql: str, database: str = "postgres") -> list[list[str]]:
    """
    Rows of one query on the restored instance ``name`` (through its own
    socket, as the superuser). On the PostgreSQL node that holds it.

    CLI Example:

    .. code-block:: bash

        salt postgres02 pgha_backup.query_restored before-drop 'SELECT count(*) FROM orders' database=shop
    """
    _on_postgresql_node("query_restored")
    path = _restore_dir(name)
    return _psql(sql, path, _map()["postgresql"]["port"], database=database)


def amcheck_restored(name: str, timeout: float = 3600) -> dict:
    """
    ``pg_amcheck`` on every database of the restored instance ``name``
    (heap and B-tree indexes; the amcheck extension installed where it is
    missing): ``ok`` and what it found. On the PostgreSQL node that holds it.

    CLI Example:

    .. code-block:: bash

        salt postgres02 pgha_backup.amcheck_restored before-drop
    """
    _on_postgresql_node("amcheck_restored")
    cfg = _map()
    path = _restore_dir(name)
    cmd = [os.path.join(cfg["lookup"]["postgresql"]["bin_dir"], "pg_amcheck"), "-h", path,
           "-p", str(cfg["postgresql"]["port"]), "-U", cfg["users"]["superuser"], "--all", "--install-missing",
           "--heapallindexed"]
    ret = _run(cmd, float(timeout))
    found = [line for line in (ret["stdout"] + "\n" + ret["stderr"]).splitlines() if line.strip()]
    return {"ok": ret["retcode"] == 0, "problems": found[:20]}


def drop_restored(name: str) -> dict:
    """
    Stop the restored instance ``name`` (fast) and remove its directory.
    Nothing else is touched. On the PostgreSQL node that holds it.

    CLI Example:

    .. code-block:: bash

        salt postgres02 pgha_backup.drop_restored before-drop
    """
    _on_postgresql_node("drop_restored")
    path = _restore_dir(name)
    if not os.path.exists(path):
        return {"name": name, "dropped": False}
    if os.path.exists(os.path.join(path, "postmaster.pid")):
        _pg_ctl("-D", path, "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
    shutil.rmtree(path)
    return {"name": name, "dropped": True}


def restored() -> list[str]:
    """
    The restored instances on this node (their names). On a PostgreSQL node.

    CLI Example:

    .. code-block:: bash

        salt postgres02 pgha_backup.restored
    """
    _on_postgresql_node("restored")
    base = _map()["lookup"]["pgbackrest"]["restore_dir"]
    return sorted(os.listdir(base)) if os.path.isdir(base) else []
