"""
Backups and restores, on the lab (`python -m bench --backups`, and a phase
of `make bench`; BENCH_BACKUP=0 skips it), through the operator's commands:

- throughput: a full and an incremental backup of a pgbench database
  (BENCH_BACKUP_SCALE, default 50) in MB/s, beside `cp -a` of the leader's
  data directory on the same disk (the machine's own limit), BENCH_RUNS
  times each, the ratio of medians;
- restore time (`pgha.restore target=latest` into a new instance) at
  scale 10 and at BENCH_BACKUP_SCALE: how it grows with the size;
- a replica built from the repository (Patroni's reinit, pgBackRest first)
  against `pg_basebackup` from the leader into an empty directory on the
  same host, same database;
- the restore drill (`mode=point`), the total loss (`mode=latest`,
  `lost_on_total_loss` with the default archive_timeout) and the
  repository's server down (`mode=repo-outage`), BENCH_RUNS times each.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time

from bench import cell
from lab import REPO
from lab.config import model

LAB = os.path.join(REPO, ".lab")
PSQL = "/usr/bin/psql"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
PG_BASEBACKUP = "/usr/lib/postgresql/15/bin/pg_basebackup"
DATABASE = "pgbench_backup"
SCALE = int(os.environ.get("BENCH_BACKUP_SCALE", "50"))
MB = 1_000_000


def say(text: str) -> None:
    print(text, flush=True)


def _json(salt, *args: str, timeout: int = 3600) -> dict:
    ret = salt(*args, "--out=json", timeout=timeout)
    try:
        data = json.loads(ret.stdout)
    except ValueError:
        data = {"error": (ret.stdout + ret.stderr)[-800:]}
    if ret.returncode != 0 and "error" not in data:
        data["error"] = (ret.stdout + ret.stderr)[-800:]
    return data


def _leader(salt) -> str:
    return _json(salt, "salt-run", "pgha.status")["leader"]


def _su_env() -> dict:
    secrets = model(LAB).secrets.as_dict(show=True)
    return dict(os.environ, PGPASSWORD=secrets["superuser_password"], PGCONNECT_TIMEOUT="10", PGSSLMODE="require")


def pgbench_init(scale: int) -> None:
    """The benchmark's database through HAProxy's leader port, pgbench's tables at ``scale`` (made again)."""
    cluster = model(LAB)
    host, port = cluster.haproxy.write_address, str(cluster.haproxy.port)
    env = _su_env()
    subprocess.run([PSQL, "-X", "-q", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres",
                    "-c", f"DROP DATABASE IF EXISTS {DATABASE}", "-c", f"CREATE DATABASE {DATABASE}"],
                   capture_output=True, text=True, env=env, check=True, timeout=300)
    subprocess.run([PGBENCH, "-i", "-q", "-s", str(scale), "-h", host, "-p", port, "-U", "postgres", DATABASE],
                   capture_output=True, text=True, env=env, check=True, timeout=3600)


def pgbench_touch(seconds: int = 10) -> None:
    """Some writes (pgbench's own transactions) for an incremental backup to take."""
    cluster = model(LAB)
    subprocess.run([PGBENCH, "-n", "-c", "2", "-T", str(seconds), "-h", cluster.haproxy.write_address,
                    "-p", str(cluster.haproxy.port), "-U", "postgres", DATABASE],
                   capture_output=True, text=True, env=_su_env(), check=True, timeout=seconds + 120)


def _data_dir(node: str) -> str:
    return os.path.join(LAB, "hosts", node, "var", "lib", "patroni")


def _du(path: str) -> int:
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def copy_rate(node: str) -> dict:
    """`cp -a` of a node's data directory to a directory beside it: bytes per second (the disk's own pace)."""
    source = _data_dir(node)
    target = os.path.join(LAB, "bench-copy")
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["sync"], check=False)
    started = time.monotonic()
    subprocess.run(["cp", "-a", source, target], check=True)
    subprocess.run(["sync"], check=False)
    took = time.monotonic() - started
    size = _du(target)
    shutil.rmtree(target, ignore_errors=True)
    return {"bytes": size, "took_s": round(took, 3), "mb_s": round(size / MB / took, 1)}


def backups(salt, runs: int) -> dict:
    """Full and incremental backups at SCALE, and `cp -a` of the leader's data directory, ``runs`` times each."""
    say(f"backups: pgbench at scale {SCALE} ...")
    pgbench_init(SCALE)
    found: dict = {"scale": SCALE, "full": [], "incr": [], "copy": []}
    for attempt in range(1, runs + 1):
        full = _json(salt, "salt-run", "pgha.backup", "type=full")
        pgbench_touch()
        incr = _json(salt, "salt-run", "pgha.backup", "type=incr")
        copy = copy_rate(_leader(salt))
        for kind, taken in (("full", full), ("incr", incr)):
            if "error" not in taken:
                taken["mb_s"] = round(taken["copied"] / MB / taken["took_s"], 1)
            found[kind].append(taken)
        found["copy"].append(copy)
        say(f"  #{attempt}: full {full.get('copied', 0) / MB:.0f} MB in {full.get('took_s')} s "
            f"({full.get('mb_s')} MB/s, from {full.get('from')}); incr {incr.get('copied', 0) / MB:.0f} MB in "
            f"{incr.get('took_s')} s ({incr.get('mb_s')} MB/s); cp -a {copy['bytes'] / MB:.0f} MB in "
            f"{copy['took_s']} s ({copy['mb_s']} MB/s)")
    return found


def restores(salt, scale: int, runs: int) -> dict:
    """pgbench at ``scale``, a full backup, then ``runs`` restores of the archive's end into a new instance."""
    say(f"restores: pgbench at scale {scale}, a full backup, {runs} restores ...")
    pgbench_init(scale)
    full = _json(salt, "salt-run", "pgha.backup", "type=full")
    found: dict = {"scale": scale, "backup_size": full.get("size"), "runs": []}
    for attempt in range(1, runs + 1):
        name = f"bench-{scale}-{attempt}"
        restored = _json(salt, "salt-run", "pgha.restore", "target=latest", f"name={name}")
        if restored.get("host"):
            salt("salt", restored["host"], "pgha_backup.drop_restored", name, timeout=300)
        found["runs"].append({key: restored.get(key) for key in ("ok", "restore_s", "recovered_s", "host", "error")})
        say(f"  scale {scale} #{attempt}: copy {restored.get('restore_s')} s, recovered and promoted "
            f"{restored.get('recovered_s')} s")
    return found


def replicas(salt, runs: int) -> dict:
    """A replica rebuilt by Patroni from the repository, against pg_basebackup from the leader, same host and data."""
    say("replicas: Patroni's reinit (pgBackRest) against pg_basebackup ...")
    cluster = model(LAB)
    found: dict = {"scale": SCALE, "reinit": [], "basebackup": []}
    salt("salt-run", "pgha.backup", "type=full", timeout=3600)
    for attempt in range(1, runs + 1):
        leader = _leader(salt)
        replica = next(name for name in cluster.pg_nodes if name != leader)
        started = time.monotonic()
        ret = salt("salt", replica, "patroni.reinit", replica, "force=True", "--out=json", timeout=600)
        healthy = salt("salt", leader, "patroni.wait_healthy", "members=3", "max_lag=1048576", "timeout=900",
                       timeout=1000)
        took = round(time.monotonic() - started, 3)
        found["reinit"].append({"replica": replica, "took_s": took, "ok": ret.returncode == 0 and healthy.returncode == 0})
        target = os.path.join(LAB, "bench-basebackup")
        shutil.rmtree(target, ignore_errors=True)
        started = time.monotonic()
        # as a replica connects: the replication user (pg_hba lets it replicate from the lab's addresses)
        secrets = cluster.secrets.as_dict(show=True)
        base = subprocess.run([PG_BASEBACKUP, "-h", cluster.address(leader), "-p", "5432",
                               "-U", cluster.users["replication"], "-D", target, "-X", "stream", "-c", "fast"],
                              capture_output=True, text=True, check=False, timeout=3600,
                              env=dict(_su_env(), PGPASSWORD=secrets["replication_password"]))
        took_base = round(time.monotonic() - started, 3)
        shutil.rmtree(target, ignore_errors=True)
        found["basebackup"].append({"took_s": took_base, "ok": base.returncode == 0,
                                    "error": base.stderr[-300:] if base.returncode else None})
        say(f"  #{attempt}: {replica} rebuilt by Patroni from the repository and streaming in {took} s; "
            f"pg_basebackup {took_base} s")
    return found


def drills(salt, mode: str, runs: int) -> list[dict]:
    """The restore drill, ``runs`` times."""
    done = []
    for attempt in range(1, runs + 1):
        report = _json(salt, "salt-run", "pgha.restore_drill", f"mode={mode}", timeout=1800)
        keep = ("ok", "restore_s", "wal_replayed_bytes", "backup_label", "checksum_match", "rows_after_target",
                "verify_ok", "amcheck_ok", "rows_at_point", "lost_on_total_loss", "lost_window_s", "acked_before_kill",
                "lost_on_live_cluster", "archive_timeout_s", "reported_after_s", "catch_up_s", "acked", "lost", "error")
        entry = {key: report.get(key) for key in keep if key in report}
        done.append(entry)
        say(f"  restore drill {mode} #{attempt}: " + ", ".join(f"{k}={v}" for k, v in entry.items()
                                                                if k not in ("backup_label",)))
    return done


def run(salt, runs: int) -> dict:
    """Every measure, on the lab as it runs (a healthy cluster with its backup host)."""
    found: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs_per_case": runs}
    found["point"] = drills(salt, "point", runs)
    found["latest"] = drills(salt, "latest", runs)
    found["repo-outage"] = drills(salt, "repo-outage", runs)
    found["restore_small"] = restores(salt, 10, runs)
    found["backups"] = backups(salt, runs)
    found["restore_big"] = restores(salt, SCALE, runs)
    found["replicas"] = replicas(salt, runs)
    return found


def _median(values: list) -> float | None:
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 3) if values else None


def lines(results: dict | None) -> list[str]:
    """The tables of bench/results.md."""
    if not results:
        return []
    out = ["", (f"Backups and restores (pgBackRest 2.45 on the lab's backup host, lz4, 2 processes; "
               f"`python -m bench --backups`, {results.get('started', '?')}; cells: median (min-max)):"), ""]
    taken = results.get("backups") or {}
    if taken:
        full = [e.get("mb_s") for e in taken["full"]]
        incr = [e.get("mb_s") for e in taken["incr"]]
        copy = [e["mb_s"] for e in taken["copy"]]
        ratio = round(_median(full) / _median(copy), 2) if _median(full) and _median(copy) else None
        out += ["| scale " + str(taken["scale"]) + " | runs | MB copied | seconds | MB/s | MB/s against cp -a |",
                "|---|---|---|---|---|---|",
                (f"| full backup | {len(full)} | {cell([e.get('copied', 0) / MB for e in taken['full']])} | "
                f"{cell([e.get('took_s') for e in taken['full']])} | {cell(full)} | {ratio} |"),
                (f"| incremental | {len(incr)} | {cell([e.get('copied', 0) / MB for e in taken['incr']])} | "
                f"{cell([e.get('took_s') for e in taken['incr']])} | {cell(incr)} | - |"),
                (f"| cp -a of the data directory | {len(copy)} | {cell([e['bytes'] / MB for e in taken['copy']])} | "
                f"{cell([e['took_s'] for e in taken['copy']])} | {cell(copy)} | 1 |"), ""]
    rows = [results.get(key) for key in ("restore_small", "restore_big") if results.get(key)]
    if rows:
        out += [("| restore to the archive's end, into a new instance | backup size (MB) | runs | copy (s) | "
                "recovered and promoted (s) |"), "|---|---|---|---|---|"]
        for entry in rows:
            out.append(f"| scale {entry['scale']} | {round((entry['backup_size'] or 0) / MB)} | {len(entry['runs'])} | "
                       f"{cell([r.get('restore_s') for r in entry['runs']])} | "
                       f"{cell([r.get('recovered_s') for r in entry['runs']])} |")
        out.append("")
    replicas_found = results.get("replicas")
    if replicas_found:
        reinit = [r for r in replicas_found["reinit"] if r.get("ok")]
        base = [r for r in replicas_found["basebackup"] if r.get("ok")]
        out += [(f"A replica rebuilt (scale {replicas_found['scale']}): by Patroni from the repository (reinit, "
                f"pgBackRest's delta restore, then streaming; {len(reinit)} of {len(replicas_found['reinit'])} ok) "
                f"{cell([r['took_s'] for r in reinit])} s; `pg_basebackup` from the leader as the replication "
                f"user into an empty directory on the same host ({len(base)} of {len(replicas_found['basebackup'])} "
                f"ok) {cell([r['took_s'] for r in base])} s"
                + (f" (measured again on {results['replicas_rerun']}: the first run's pg_basebackup connected as "
                   "the superuser, which pg_hba does not let replicate)" if results.get("replicas_rerun") else "")
                + "."), ""]
    for mode, title in (("point", "restore drill, mode=point"), ("latest", "total loss, mode=latest"),
                        ("repo-outage", "repository's server down, mode=repo-outage")):
        entries = results.get(mode) or []
        if not entries:
            continue
        ok = sum(1 for e in entries if e.get("ok"))
        if mode == "point":
            out.append(f"The {title}: {ok} of {len(entries)} ok (checksum matched "
                       f"{sum(1 for e in entries if e.get('checksum_match'))}, rows after the target "
                       f"{sum(e.get('rows_after_target') or 0 for e in entries)}, verify ok "
                       f"{sum(1 for e in entries if e.get('verify_ok'))}, pg_amcheck ok "
                       f"{sum(1 for e in entries if e.get('amcheck_ok'))}); restore_s "
                       f"{cell([e.get('restore_s') for e in entries])}, WAL replayed (MB) "
                       f"{cell([(e.get('wal_replayed_bytes') or 0) / MB for e in entries])}.")
        elif mode == "repo-outage":
            out.append(f"The {title}: {ok} of {len(entries)} ok; archiving reported failing after "
                       f"{cell([e.get('reported_after_s') for e in entries])} s, caught up in "
                       f"{cell([e.get('catch_up_s') for e in entries])} s once the server was back; "
                       f"{sum(e.get('lost') or 0 for e in entries)} of "
                       f"{sum(e.get('acked') or 0 for e in entries)} acknowledged writes lost"
                       + (f" (run on {results['repo_outage_run']})" if results.get("repo_outage_run") else "") + ".")
        else:
            out.append(f"The {title} (every PostgreSQL node killed, archive_timeout "
                       f"{entries[0].get('archive_timeout_s')} s): {ok} of {len(entries)} ok; lost_on_total_loss "
                       f"{cell([e.get('lost_on_total_loss') for e in entries])} acknowledged writes of "
                       f"{cell([e.get('acked_before_kill') for e in entries])}, reaching back lost_window_s "
                       f"{cell([e.get('lost_window_s') for e in entries])}; lost on the live cluster "
                       f"{sum(e.get('lost_on_live_cluster') or 0 for e in entries)}.")
        out.append("")
    return out
