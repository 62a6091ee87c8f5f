"""
WAL archiving through many leader changes in a row (`python -m bench --leader-changes`, and a phase of
`make bench`; BENCH_LEADER_CHANGES changes, default 40, 0 skips it in the full run), on the lab as it runs:
switchovers one after another, after each some segments switched on the new leader and a checkpoint, so
that it recycles what it no longer needs (a former leader hands its own copy of the segment its old
timeline ended in to its archiver then: two such copies once made pgBackRest refuse the second for good).

Counted: the archiver's failures on each node during the run (pg_stat_archiver), the segments
pgha-archive-push left out (its lines in the nodes' PostgreSQL logs), the pairs of such copies in the
nodes' pg_wal that differ (each one a push pgBackRest would have refused), and `pgha.check` at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time

from bench.backup import PSQL, _data_dir, _su_env
from lab import REPO
from lab.config import model

LAB = os.path.join(REPO, ".lab")
CHANGES = int(os.environ.get("BENCH_LEADER_CHANGES", "40"))
SWITCHES = 10  # segments switched on each new leader: past wal_keep_size (128 MB), so the checkpoint recycles
LEFT_OUT = re.compile(r"pgha-archive-push: ([0-9A-F]{24}) not archived")
SEGMENT = re.compile(r"^[0-9A-F]{24}$")


def _log(node: str) -> str:
    return os.path.join(LAB, "hosts", node, "var", "log", "pgha", "patroni.log")


def _archivers(salt) -> dict:
    ret = salt("salt", "postgres*", "pgha_backup.archiver", "--out=json", "--static", timeout=120)
    try:
        found = json.loads(ret.stdout)
    except ValueError:
        return {}
    return {node: value for node, value in found.items() if isinstance(value, dict)}


def _recycle_on_the_leader(cluster, env: dict) -> None:
    """Segments switched through HAProxy's leader port, then a checkpoint: the leader recycles its old ones."""
    sql = ["-c", "SELECT pg_logical_emit_message(false, 'pgha-bench', 'x'); SELECT pg_switch_wal();"] * SWITCHES
    subprocess.run([PSQL, "-X", "-q", "-h", cluster.haproxy.write_address, "-p", str(cluster.haproxy.port),
                    "-U", "postgres", "-d", "postgres", *sql, "-c", "CHECKPOINT"],
                   capture_output=True, text=True, env=env, check=True, timeout=300)


def differing_copies(nodes: tuple[str, ...]) -> list[str]:
    """Old-timeline segments that two or more nodes hold with different contents (what two pushes would clash on)."""
    wals = {node: os.path.join(_data_dir(node), "pg_wal") for node in nodes}
    names = {node: set(os.listdir(wal)) for node, wal in wals.items()}
    newest = max((name[:8] for found in names.values() for name in found if name.endswith(".history")), default="")
    held: dict[str, dict[str, str]] = {}
    for node, found in names.items():
        for name in found:
            if SEGMENT.match(name) and name[:8] < newest:
                held.setdefault(name, {})[node] = os.path.join(wals[node], name)
    differing = []
    for name, paths in held.items():
        if len(paths) > 1 and len({_digest(path) for path in paths.values()}) > 1:
            differing.append(name)
    return sorted(differing)


def repository_segments(backup) -> tuple[set[str], set[str]]:
    """The repository's segments: those stored as .partial (a timeline ended in them), those stored in full."""
    partial, full = set(), set()
    for _, _, files in os.walk(os.path.join(backup.repo_path, "archive", backup.stanza)):
        for name in files:
            if SEGMENT.match(name[:24]):
                (partial if name[24:].startswith(".partial") else full).add(name[:24])
    return partial, full


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha1(handle.read()).hexdigest()


def run(salt, healthy) -> dict:
    """CHANGES switchovers in a row, each followed by recycling on the new leader; what archiving did."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cluster, env = model(LAB), _su_env()
    nodes = cluster.pg_nodes
    before = _archivers(salt)
    partial_before = repository_segments(cluster.backup)[0]
    offsets = {node: os.path.getsize(_log(node)) if os.path.exists(_log(node)) else 0 for node in nodes}
    changes, problems = 0, []
    for attempt in range(1, CHANGES + 1):
        if not healthy():
            problems.append(f"not healthy before change {attempt}")
            break
        ret = salt("salt-run", "pgha.switchover", "--out=json", timeout=600)
        try:
            moved = json.loads(ret.stdout)
        except ValueError:
            moved = {"ok": False, "error": (ret.stdout + ret.stderr)[-300:]}
        if ret.returncode != 0 or not moved.get("ok"):
            problems.append(f"switchover {attempt}: {moved}")
            break
        changes += 1
        _recycle_on_the_leader(cluster, env)
        print(f"  leader change {attempt}: {moved.get('old_leader')} -> {moved.get('new_leader')}", flush=True)
    time.sleep(5)  # archive-push's queue
    after = _archivers(salt)
    left_out = []
    for node, offset in offsets.items():
        with open(_log(node), encoding="utf-8", errors="replace") as handle:
            handle.seek(offset)
            left_out += [f"{node}:{match}" for match in LEFT_OUT.findall(handle.read())]
    check = salt("salt-run", "pgha.check", "--out=json", timeout=120)
    try:
        check_problems = [p for p in json.loads(check.stdout).get("problems", []) if "archiv" in p]
    except ValueError:
        check_problems = [(check.stdout + check.stderr)[-300:]]
    partial, full = repository_segments(cluster.backup)
    ended = partial - partial_before  # the segments the run's timelines ended in
    failed = {node: (after.get(node) or {}).get("failed_count", 0) - (before.get(node) or {}).get("failed_count", 0)
              for node in nodes}
    return {"started": started, "changes": changes, "failed_archives": failed,
            "last_failed_wal": {node: (after.get(node) or {}).get("last_failed_wal") for node in nodes},
            "timelines_ended": len(ended), "pushed_in_full": len(ended & full),
            "left_out": len(left_out), "left_out_segments": left_out, "differing_copies": differing_copies(nodes),
            "archiving_problems": check_problems, "problems": problems,
            "ok": changes == CHANGES and not any(failed.values()) and not check_problems and not problems}


def lines(found: dict | None) -> list[str]:
    """The report's section."""
    if not found:
        return []
    if "started" not in found:
        return ["", "## WAL archiving through leader changes in a row", "", f"Not measured: {found.get('error')}."]
    return ["", "## WAL archiving through leader changes in a row", "",
            (f"`python -m bench --leader-changes` ({found['started']}): {found['changes']} switchovers in a row, "
             f"after each {SWITCHES} segments switched on the new leader and a checkpoint. Archive failures "
             f"during the run, by node: {found['failed_archives']}; segments pgha-archive-push left out (a "
             f"former leader's copy of the segment its timeline ended in): {found['left_out']}; of the "
             f"{found.get('timelines_ended')} segments the run's timelines ended in, stored in full beside their "
             f".partial: {found.get('pushed_in_full')}; old-timeline "
             f"segments held by two or more nodes with different contents at the end (each a push pgBackRest "
             f"would refuse for good): {len(found['differing_copies'])}; archiving problems in pgha.check at the "
             f"end: {found['archiving_problems'] or 'none'}; ok: {found['ok']}."
             + (f" Stopped: {found['problems']}." if found["problems"] else ""))] + _without(found.get("without"))


def _without(found: dict | None) -> list[str]:
    """The same run with the archive_command set back to pgBackRest's archive-push alone (by hand, on the lab)."""
    if not found:
        return []
    return ["", (f"Without pgha-archive-push ({found['started']}; the lab's Patroni configurations edited by hand to "
                 f"pgBackRest's archive-push alone, then reloaded): {found['changes']} switchovers made; of the "
                 f"{found.get('timelines_ended')} segments the run's timelines ended in, stored in full beside "
                 f"their .partial (a former leader's copy, pushed): {found.get('pushed_in_full')}; archive "
                 f"failures by node: {found['failed_archives']}, the last failed segment by node: "
                 f"{found['last_failed_wal']}; archiving problems in pgha.check at the end: "
                 f"{found['archiving_problems'] or 'none'}"
                 + (f"; stopped: {found['problems']}" if found["problems"] else "")
                 + ("; no failure: no second, different copy of one of those segments reached an archiver in this "
                    "run (a refusal needs one)" if not any(found["failed_archives"].values()) else "") + ".")]
