"""
The restore drill: proof that a backup gives the data back. A writer
commits numbered rows into the formula's own database (the failover
drill's writer and table) while the drill works on the live cluster.

``point`` (the default): a restore point is created while the table is
locked against writes, with the count and checksum of the rows committed
before it; the writer goes on; then an operator error is played (the
drill's table dropped). The restore point is restored into a new instance
beside the cluster, and the drill is ok only when the restored rows'
checksum equals the recorded one, no row committed after the point is
there, ``pgbackrest verify`` finds the repository whole and ``pg_amcheck``
finds the restored instance sound.

``latest``: every PostgreSQL node is killed at once (SIGKILL to Patroni
and PostgreSQL) while the writer writes; the end of the archive is
restored into a new instance and the acknowledged writes it lacks are
counted (``lost_on_total_loss``: what losing every PostgreSQL host costs,
bounded by ``archive_timeout``); then the cluster is started again and
every acknowledged write is read back from it.

``repo-outage``: the repository's server is stopped while the writer
writes, until the backups' check reports archiving failing; it is started
again, the queue archived, and the end of the archive restored must hold
every acknowledged write (``lost`` 0).

Plain Python acting through ``pgha_reach.Reach``; its siblings (the
backups', the restores' and the drill's modules) are handed in by
``pgha_runner.restore_driller``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from salt.exceptions import CommandExecutionError

MODES = ("point", "latest", "repo-outage")
# repo-outage: the repository's server down, a segment switched at once, for at most archive-push's own wait
# (60 s), a segment's archive_timeout and this much more, until PostgreSQL reports archiving failing, as
# pgha.check must
REPO_OUTAGE_EXTRA_S = 20.0
WRITE_BEFORE_S = 3.0
# latest: the writer writes this much longer than archive_timeout before the kill, so that segments are archived
LATEST_EXTRA_S = 15.0
SPOOL_SLACK_S = 10.0
# How long archive-push waits for the repository before PostgreSQL counts a failure (pgBackRest's archive-timeout)
ARCHIVE_PUSH_WAIT_S = 60.0
WRITE_AFTER_S = 3.0
CHECKSUM_SQL = ("SELECT count(*), coalesce(max(seq), 0), coalesce(md5(string_agg(seq::text, ',' ORDER BY seq)), '') "
                "FROM pgha_drill WHERE run = {run}")


def superuser_dsn(cluster: Any, connect_timeout: int = 5) -> str:
    """The superuser's connection to the formula's database through HAProxy's leader port."""
    return psycopg.conninfo.make_conninfo(
        host=cluster.haproxy.write_address, port=cluster.haproxy.port, user=cluster.users["superuser"],
        password=cluster.secrets.get("superuser_password"), dbname=cluster.probe_database,
        connect_timeout=connect_timeout, application_name="pgha-restore-drill")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def mark_point(dsn: str, run: str, point: str) -> dict:
    """
    The restore point, created while the drill's table is locked against
    writes: the rows committed before it (count, last, checksum) are
    exactly those a restore to it must give back.
    """
    with psycopg.connect(dsn) as conn:
        conn.execute("LOCK TABLE pgha_drill IN SHARE MODE")
        count, last, checksum = conn.execute(CHECKSUM_SQL.format(run=_literal(run))).fetchone()
        lsn, at = conn.execute("SELECT pg_create_restore_point(%s)::text, extract(epoch FROM clock_timestamp())",
                               (point,)).fetchone()
        conn.commit()
    return {"rows": int(count), "last_seq": int(last), "checksum": checksum, "lsn": lsn, "at": float(at)}


def archive_now(dsn: str, timeout: float) -> dict:
    """The current WAL segment switched and waited for in the archive (the leader's archiver says so)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            last, failed = conn.execute("SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') "
                                        "FROM pg_stat_archiver").fetchone()
            if last[:24] >= segment:
                return {"segment": segment, "archived": last}
            if time.monotonic() > deadline:
                raise CommandExecutionError(f"segment {segment} not archived within {timeout:.0f} s (last archived "
                                            f"{last or 'none'}, last failed {failed or 'none'})")
            time.sleep(0.5)


def _restored_rows(reach: Any, host: str, name: str, database: str, run: str, last_seq: int) -> dict:
    rows = reach.call(host, "pgha_backup.query_restored", name, CHECKSUM_SQL.format(run=_literal(run)),
                      database=database)
    count, last, checksum = rows[0]
    after = reach.call(host, "pgha_backup.query_restored", name,
                       f"SELECT count(*) FROM pgha_drill WHERE run = {_literal(run)} AND seq > {int(last_seq)}",
                       database=database)[0][0]
    return {"rows": int(count), "last_seq": int(last), "checksum": checksum, "after_target": int(after)}


def _replayed(reach: Any, host: str, name: str) -> int | None:
    """The WAL a restored instance replayed since its backup began (bytes, from its backup_label)."""
    rows = reach.call(host, "pgha_backup.query_restored", name,
                      "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), "
                      "substring(f FROM 'START WAL LOCATION: ([0-9A-F/]+)')::pg_lsn)::bigint "
                      "FROM (SELECT pg_read_file('backup_label.old') AS f) AS label")
    replayed = rows[0][0] if rows else None
    return int(replayed) if replayed not in (None, "") else None


def run(reach: Any, mode: str, host: str | None, keep: bool, timeout: float, parts: dict) -> tuple[dict, list[dict]]:
    """
    One restore drill (``point``, ``latest`` or ``repo-outage``); ``parts``: the writer
    class, the backups' and restores' modules, the probe role's dsn. Returns
    the result and the writer's records.
    """
    cluster = reach.cluster
    backups, restore, writer_class = parts["backups"], parts["restore"], parts["writer"]
    facts = backups.facts(reach)
    if not [entry for entry in facts["backups"] if not entry.get("error")]:
        raise CommandExecutionError(f"the repository on {facts['node']} holds no backup to restore; take one first "
                                    "(salt-run pgha.backup type=full)")
    run_id = f"restore-{uuid.uuid4().hex[:12]}"
    name = f"drill-{run_id[8:]}"
    result: dict = {"mode": f"restore-{mode}", "run": run_id, "ok": False, "marks": {}, "stanza": facts["stanza"],
                    "backups_before": len(facts["backups"])}
    with psycopg.connect(parts["probe_dsn"], autocommit=True) as conn:
        conn.execute(parts["table_ddl"])
    writer = writer_class(parts["probe_dsn"], run_id)
    writer.start()
    chosen = None
    try:
        time.sleep(cluster.backup.archive_timeout + LATEST_EXTRA_S if mode == "latest" else WRITE_BEFORE_S)
        if mode == "point":
            chosen = _point(reach, restore, facts, writer, run_id, name, host, timeout, result)
        elif mode == "latest":
            chosen = _latest(reach, restore, facts, writer, run_id, name, host, timeout, result)
        else:
            chosen = _repo_outage(reach, backups, restore, facts, writer, run_id, name, host, timeout, result)
    finally:
        writer.stopping.set()
        writer.join(timeout=30)
        if chosen and not keep:
            try:
                reach.call(chosen, "pgha_backup.drop_restored", name, wait=180)
            except CommandExecutionError as exc:
                result["drop_error"] = str(exc)
    acked = [r for r in writer.records if r["acked"]]
    result["acked_writes"] = len(acked)
    result["failed_writes"] = sum(1 for r in writer.records if r["acked"] is None)
    return result, writer.records


def _point(reach, restore, facts, writer, run_id, name, host, timeout, result) -> str:
    cluster = reach.cluster
    dsn = superuser_dsn(cluster)
    point = f"pgha-drill-{run_id[8:]}"
    marked = mark_point(dsn, run_id, point)
    result["marks"]["restore_point"] = marked["at"]
    result.update(restore_point=point, rows_at_point=marked["rows"], checksum_at_point=marked["checksum"])
    time.sleep(WRITE_AFTER_S)
    writer.stopping.set()
    writer.join(timeout=30)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE pgha_drill")
    result["marks"]["fault"] = time.time()
    result["rows_after_point_on_live"] = sum(1 for r in writer.records if r["acked"] and r["seq"] > marked["last_seq"])
    result["archived"] = archive_now(dsn, timeout)
    target = restore.Target("name", point, None, point)
    restored = restore.into_new(reach, target, host, name, facts, timeout)
    chosen = restored["host"]
    result["marks"]["restored"] = time.time()
    rows = _restored_rows(reach, chosen, name, cluster.probe_database, run_id, marked["last_seq"])
    replayed = _replayed(reach, chosen, name)
    verify = reach.call(cluster.backup.node, "pgha_backup.verify", timeout=timeout, wait=int(timeout) + 120)
    amcheck = reach.call(chosen, "pgha_backup.amcheck_restored", name, timeout=timeout, wait=int(timeout) + 120)
    result.update(
        restored_on=chosen, restore_s=restored["recovered_s"], restore_copy_s=restored["restore_s"],
        backup_label=restored.get("backup_label"), wal_replayed_bytes=replayed, rows_restored=rows["rows"],
        checksum_match=(rows["rows"], rows["last_seq"], rows["checksum"]) == (marked["rows"], marked["last_seq"],
                                                                             marked["checksum"]),
        rows_after_target=rows["after_target"], verify_ok=verify["ok"], verify_problems=verify["problems"],
        amcheck_ok=amcheck["ok"], amcheck_problems=amcheck["problems"])
    result["ok"] = bool(result["checksum_match"] and rows["after_target"] == 0 and verify["ok"] and amcheck["ok"])
    return chosen


def _latest(reach, restore, facts, writer, run_id, name, host, timeout, result) -> str:
    cluster = reach.cluster
    killed_at = time.time()
    result["marks"]["fault"] = killed_at
    for node in cluster.pg_nodes:
        reach.call(node, "pgha_service.crash", "patroni", wait=60)
    result["killed"] = list(cluster.pg_nodes)
    time.sleep(1.0)
    writer.stopping.set()
    writer.join(timeout=30)
    acked_at = {r["seq"]: r["acked"] for r in writer.records if r["acked"]}
    acked = set(acked_at)
    try:
        target = restore.Target("default", None, None, "latest")
        restored = restore.into_new(reach, target, host or cluster.pg_nodes[0], name, facts, timeout)
        chosen = restored["host"]
        result["marks"]["restored"] = time.time()
        present = reach.call(chosen, "pgha_backup.query_restored", name,
                             f"SELECT seq FROM pgha_drill WHERE run = {_literal(run_id)}", database=cluster.probe_database)
        restored_seqs = {int(row[0]) for row in present}
        lost = acked - restored_seqs
        # how far back the loss reaches: from the first acknowledged write the restore lacks to the kill
        window = round(killed_at - min(acked_at[seq] for seq in lost), 3) if lost else 0.0
        result.update(restored_on=chosen, restore_s=restored["recovered_s"], restore_copy_s=restored["restore_s"],
                      acked_before_kill=len(acked), lost_on_total_loss=len(lost), lost_window_s=window,
                      archive_timeout_s=cluster.backup.archive_timeout)
        result.update(backup_label=restored.get("backup_label"), wal_replayed_bytes=_replayed(reach, chosen, name))
    finally:
        for node in cluster.pg_nodes:
            reach.call(node, "pgha_service.start", "patroni", wait=120)
        healthy = reach.call(cluster.pg_nodes[0], "patroni.wait_healthy", members=len(cluster.pg_nodes),
                             max_lag=cluster.gates.max_lag_bytes, timeout=int(timeout), wait=int(timeout) + 60)
        result["leader_after"] = healthy.get("leader")
    with psycopg.connect(superuser_dsn(cluster), autocommit=True) as conn:
        live = {row[0] for row in conn.execute("SELECT seq FROM pgha_drill WHERE run = %s", (run_id,))}
        conn.execute("DELETE FROM pgha_drill WHERE run = %s", (run_id,))
    result["lost_on_live_cluster"] = len(acked - live)
    # the archive's promise: what a total loss costs reaches back no further than archive_timeout (and the
    # few seconds archive-push's queue and a busy host add)
    bound = cluster.backup.archive_timeout + SPOOL_SLACK_S
    result["lost_window_bound_s"] = bound
    result["ok"] = result["lost_on_live_cluster"] == 0 and result.get("lost_window_s", bound + 1) <= bound
    return chosen


def _repo_outage(reach, backups, restore, facts, writer, run_id, name, host, timeout, result) -> str:
    """
    The repository's server stopped while the writer writes: archiving
    fails and waits (pgha.check must say so), the server started again,
    the queue archived; the end of the archive restored must hold every
    acknowledged write.
    """
    cluster = reach.cluster
    node = cluster.backup.node
    result["marks"]["fault"] = time.time()
    reach.call(node, "pgha_service.stop", "pgbackrest", wait=120)
    try:
        dsn = superuser_dsn(cluster)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_switch_wal()")  # a segment for archive-push now, not archive_timeout later
        started = time.monotonic()
        deadline = started + ARCHIVE_PUSH_WAIT_S + cluster.backup.archive_timeout + REPO_OUTAGE_EXTRA_S
        seen: list[str] = []
        while time.monotonic() < deadline and not seen:
            time.sleep(5)
            try:
                seen = backups.problems(backups.facts(reach))
            except CommandExecutionError as exc:  # the repository's info is read on the backup node: it answers
                seen = [f"backups: cannot read the repository: {exc}"]
        result["reported"] = seen
        result["reported_after_s"] = round(time.monotonic() - started, 1) if seen else None
    finally:
        reach.call(node, "pgha_service.start", "pgbackrest", wait=120)
        result["marks"]["restore"] = time.time()
    writer.stopping.set()
    writer.join(timeout=30)
    acked = {r["seq"] for r in writer.records if r["acked"]}
    started = time.monotonic()
    result["archived"] = archive_now(dsn, timeout)
    result["catch_up_s"] = round(time.monotonic() - started, 3)
    target = restore.Target("default", None, None, "latest")
    restored = restore.into_new(reach, target, host, name, facts, timeout)
    chosen = restored["host"]
    result["marks"]["restored"] = time.time()
    present = reach.call(chosen, "pgha_backup.query_restored", name,
                         f"SELECT seq FROM pgha_drill WHERE run = {_literal(run_id)}", database=cluster.probe_database)
    lost = acked - {int(row[0]) for row in present}
    result.update(restored_on=chosen, restore_s=restored["recovered_s"], acked=len(acked), lost=len(lost),
                  outage_reported=bool(result["reported"]))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM pgha_drill WHERE run = %s", (run_id,))
    result["ok"] = not lost and bool(result["reported"])
    return chosen
