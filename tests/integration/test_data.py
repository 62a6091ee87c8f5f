"""
Getting data back on the test cluster: the orchestration made the backup
host's repository, created the stanza and took a full backup; WAL is
archived from whichever node leads (the orchestration's drill moved the
leader); a restore point is restored into a new instance beside the
cluster with exactly the rows before it; an in-place restore without
confirmation is refused with the cluster untouched; the restore drill
proves a restore. Runs after test_cluster.py (same cluster).
"""

from __future__ import annotations

import json
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
