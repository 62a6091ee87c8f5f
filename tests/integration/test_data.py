"""
Getting data back on the test cluster: the orchestration made the backup
host's repository, created the stanza and took a full backup; WAL is
archived from whichever node leads (the orchestration's drill moved the
leader), and not a former leader's own copy of the segment its timeline
ended in; a restore point is restored into a new instance beside the
cluster with exactly the rows before it; an in-place restore without
confirmation is refused with the cluster untouched; the restore drill
proves a restore. Runs after test_cluster.py (same cluster).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import time

import psycopg
from conftest import ADDRESSES


def run(salt_master, fun: str, *args, timeout: int = 600):
    return salt_master.salt_run_cli(timeout=timeout).run(fun, *args, _timeout=timeout)


def call(salt_master, tgt: str, fun: str, *args, timeout: int = 300):
    return salt_master.salt_cli(timeout=timeout).run(fun, *args, minion_tgt=tgt, _timeout=timeout)


def leader_of(salt_master) -> dict:
    members = call(salt_master, "postgres01", "patroni.members").data
    return next(m for m in members if m["role"] == "leader")


def superuser(cluster_secrets) -> psycopg.Connection:
    return psycopg.connect(host=ADDRESSES["haproxy"], port=5432, user="postgres", dbname="postgres",
                           password=cluster_secrets["superuser_password"], connect_timeout=5, autocommit=True)


def archived(conn, timeout: float = 120) -> str:
    """The current segment switched and archived (the leader's archiver says so)."""
    segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = conn.execute("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").fetchone()[0]
        if last[:24] >= segment:
            return segment
        time.sleep(0.5)
    raise AssertionError(f"{segment} not archived within {timeout} s")


def test_the_repository_holds_a_full_backup_and_archiving_works(salt_master, orchestration):
    ret = run(salt_master, "pgha.backups", "--out=json")
    assert ret.returncode == 0, ret.stdout
    data = json.loads(ret.stdout)
    assert data["status"] == "ok" and data["node"] == "backup"
    assert [entry["type"] for entry in data["backups"]][:1] == ["full"]
    assert data["problems"] == [] and data["archiver"]["failed_count"] == 0
    assert data["newest_backup_age_s"] < 3600


def test_archiving_follows_the_leader_onto_its_timeline(salt_master, orchestration):
    leader = leader_of(salt_master)
    assert leader["timeline"] >= 2  # the orchestration's drill moved the leader
    check = call(salt_master, leader["name"], "pgha_backup.check")
    assert check.returncode == 0, check.stdout
    data = json.loads(run(salt_master, "pgha.backups", "--out=json").stdout)
    assert data["archive"]["max"][:8] == f"{leader['timeline']:08X}", data["archive"]


def switch_segment(wal: pathlib.Path) -> tuple[int, str, str]:
    """From the newest history in pg_wal: the last timeline that ended, where, and the segment it ended in."""
    history = max(wal.glob("????????.history")).read_text()
    tli, switch = [line.split()[:2] for line in history.splitlines() if line[:1].isdigit()][-1]
    high, low = (int(part, 16) for part in switch.split("/"))
    return int(tli), switch, f"{int(tli):08X}{high:08X}{low // (16 * 1024 * 1024):08X}"


def test_a_former_leaders_copy_of_the_segment_its_timeline_ended_in_is_left_out(salt_master, orchestration,
                                                                                 test_root, cluster_secrets):
    """A node that led a timeline keeps its own copy of the segment that timeline ended in, with no archive
    status; leading again, PostgreSQL marks it ready when it recycles it. Put in that state on the leader
    (a copy under that name, marked ready), it goes through the leader's archiver and archive_command: left
    out and said in PostgreSQL's log, marked done, no archive failure, and the repository holds that segment
    only as the promoted node's .partial."""
    leader = leader_of(salt_master)["name"]
    wal = pathlib.Path(test_root, "hosts", leader, "var/lib/patroni/pg_wal")
    tli, switch, name = switch_segment(wal)
    any_segment = next(path for path in sorted(wal.iterdir()) if re.fullmatch(r"[0-9A-F]{24}", path.name))
    copy, ready = wal / name, wal / "archive_status" / f"{name}.ready"
    made = not copy.exists()
    owner = wal.stat()
    log = pathlib.Path(test_root, "hosts", leader, "var/log/pgha/patroni.log")
    offset = log.stat().st_size
    try:
        if made:
            shutil.copyfile(any_segment, copy)
            os.chown(copy, owner.st_uid, owner.st_gid)
        ready.write_text("")
        os.chown(ready, owner.st_uid, owner.st_gid)
        with superuser(cluster_secrets) as conn:
            command = conn.execute("SHOW archive_command").fetchone()[0]
            failed = conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()[0]
            conn.execute("SELECT pg_logical_emit_message(false, 'pgha-test', 'x')")  # a segment to switch
            archived(conn)  # a segment switched wakes the archiver: ready files go oldest first
            deadline = time.monotonic() + 90
            while ready.exists() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()[0] == failed
        assert "/usr/local/sbin/pgha-archive-push /usr/bin/pgbackrest " in command, command
        assert command.endswith(" archive-push %p"), command
        assert (wal / "archive_status" / f"{name}.done").exists() and not ready.exists()
        with open(log, encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            said = handle.read()
        assert f"pgha-archive-push: {name} not archived: its timeline {tli} ended at {switch}" in said, said[-2000:]
        repository = pathlib.Path(test_root, "hosts", "backup", "var/lib/pgbackrest/archive")
        stored = sorted(path.name for path in repository.rglob(name + "*"))
        assert stored and all(entry.startswith(name + ".partial-") for entry in stored), stored
    finally:
        for path in (ready, wal / "archive_status" / f"{name}.done", *([copy] if made else [])):
            path.unlink(missing_ok=True)


def test_a_restore_point_restored_into_a_new_instance(salt_master, orchestration, cluster_secrets):
    with superuser(cluster_secrets) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pgha_it_pitr (id int PRIMARY KEY)")
        conn.execute("INSERT INTO pgha_it_pitr VALUES (1)")
        conn.execute("SELECT pg_create_restore_point('pgha-it-point')")
        conn.execute("INSERT INTO pgha_it_pitr VALUES (2)")
        archived(conn)
    ret = run(salt_master, "pgha.restore", "target=pgha-it-point", "name=it-point", "host=postgres03", "--out=json")
    assert ret.returncode == 0, ret.stdout
    restored = json.loads(ret.stdout)
    assert restored["ok"] is True and restored["host"] == "postgres03" and restored["target_type"] == "name"
    try:
        rows = call(salt_master, "postgres03", "pgha_backup.query_restored", "it-point",
                    "SELECT id FROM pgha_it_pitr ORDER BY id")
        assert rows.returncode == 0, rows.stdout
        assert rows.data == [["1"]]
    finally:
        assert call(salt_master, "postgres03", "pgha_backup.drop_restored", "it-point").data["dropped"] is True
    # the live cluster kept both rows
    with superuser(cluster_secrets) as conn:
        assert [row[0] for row in conn.execute("SELECT id FROM pgha_it_pitr ORDER BY id")] == [1, 2]


def test_a_restore_out_of_reach_or_in_place_unconfirmed_changes_nothing(salt_master, orchestration):
    before = leader_of(salt_master)
    ret = run(salt_master, "pgha.restore", "target=latest", "in_place=True")
    assert ret.returncode != 0 and "give confirm=True to do it. Nothing was changed" in ret.stdout
    ret = run(salt_master, "pgha.restore", "target=2001-01-01 00:00:00")
    assert ret.returncode != 0 and "is before the first backup ended" in ret.stdout
    after = leader_of(salt_master)
    assert (after["name"], after["timeline"]) == (before["name"], before["timeline"])
    assert call(salt_master, "postgres02", "pgha_backup.restored").data == []


def test_the_restore_drill_proves_a_restore(salt_master, orchestration):
    ret = run(salt_master, "pgha.restore_drill", "--out=json", timeout=900)
    assert ret.returncode == 0, ret.stdout
    report = json.loads(ret.stdout)
    assert report["ok"] is True
    assert report["checksum_match"] is True and report["rows_after_target"] == 0
    assert report["verify_ok"] is True and report["amcheck_ok"] is True
    assert report["rows_at_point"] > 0 and report["rows_after_point_on_live"] > 0
    assert report["backup_label"]
