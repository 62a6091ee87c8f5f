"""
Network partitions and quorum commit, on the namespaced lab as it runs
(`python -m bench --partitions`; BENCH_PARTITIONS=0 skips it in the full
run). For synchronous mode `on` and then `quorum` (Patroni's dynamic
configuration, set through the operator's `patroni.edit_config`), each
drill BENCH_RUNS times: partition-leader, partition-leader-dcs,
partition-replica and sync-standby-loss, and pgbench tpcb-like through
HAProxy (the write latency each mode costs); then dcs-outage with every
core busy (four spinning processes beside the lab, the failsafe under
load); last, on the three-member etcd (the lab moved to TOPOLOGY=ha, and
back to the seed's after), partition-etcd-minority in both modes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

from bench import cell, failover_drill, pgbench
from lab import REPO

FIELDS = ("lost", "failed_writes", "unavailable_s", "write_gap_s", "client_stall_s", "rto_s", "old_leader_writable_s",
          "acked_on_old_after_promotion")
SYNC_MODES = {"on": {"synchronous_mode": True}, "quorum": {"synchronous_mode": "quorum", "synchronous_node_count": 1}}
MODES = ("partition-leader", "partition-leader-dcs", "partition-replica", "sync-standby-loss")


def set_sync(salt, name: str) -> None:
    ret = salt("salt", "postgres01", "patroni.edit_config", json.dumps(SYNC_MODES[name]), "--out=json")
    if ret.returncode != 0:
        raise SystemExit(f"bench: cannot set synchronous mode {name}: {ret.stdout}{ret.stderr}")
    time.sleep(6)


def one(salt, mode: str, sync: str, attempt: int, load: int = 0, topology: str = "seed") -> dict:
    drill, code = failover_drill(salt, f"mode={mode}", timeout=1500)
    entry = {"mode": mode, "sync": sync, "attempt": attempt, "load": load, "topology": topology, "exit": code,
             **{key: drill.get(key) for key in ("ok", "problems", "acked", "old_leader", "new_leader",
                                                "timeline_before", "timeline_after", "old_leader_acked",
                                                "old_leader_acked_after_promotion", "cut_off", "cut_from",
                                                "failsafe_mode", "sync_switch_s", "errors", *FIELDS)}}
    entry["report"] = drill.get("report")
    print(f"  {mode:<24} {sync:<6} load={load} #{attempt}: ok={entry['ok']} lost={entry['lost']} "
          f"failed={entry['failed_writes']} unavailable={entry['unavailable_s']} gap={entry['write_gap_s']} "
          f"stall={entry['client_stall_s']} "
          f"rto={entry['rto_s']} old_writable={entry['old_leader_writable_s']} "
          f"acked_on_old_after_promotion={entry['acked_on_old_after_promotion']}", flush=True)
    return entry


def _spin(until: float) -> None:
    while time.time() < until:
        pass


def busy(seconds: float, count: int = 4) -> list[multiprocessing.Process]:
    """``count`` processes spinning for ``seconds`` (every core busy), started now."""
    until = time.time() + seconds
    procs = [multiprocessing.Process(target=_spin, args=(until,), daemon=True) for _ in range(count)]
    for proc in procs:
        proc.start()
    return procs


def tpcb_latency(leader: str, seconds: int = 10, rounds: int = 3) -> dict:
    """pgbench tpcb-like, 4 clients, through HAProxy's leader port: the median latency and TPS of ``rounds``."""
    pgbench.prepare(leader)
    samples = [pgbench.run_one(pgbench.endpoints(leader)["haproxy"], "tpcb-like", 4, seconds) for _ in range(rounds)]
    good = [s for s in samples if "error" not in s]
    if not good:
        return {"error": samples[-1].get("error")}
    return {"latency_ms": round(statistics.median(s["latency_ms"] for s in good), 2),
            "tps": round(statistics.median(s["tps"] for s in good), 1), "rounds": len(good)}


def streaming(salt, timeout: float = 180) -> bool:
    """
    One leader and every other member streaming from it on its timeline, lag 0 (``pgha.status``): the drills'
    precondition here, rather than ``pgha.check``, which also fails on WAL archiving (jammed by many leader
    changes in a row: docs/explanation/decisions.md), not what these drills measure.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ret = salt("salt-run", "pgha.status", "--out=json", timeout=120)
        try:
            members = json.loads(ret.stdout).get("members") or []
        except ValueError:
            members = []
        leaders = [m for m in members if m.get("role") == "leader" and m.get("state") == "running"]
        if len(leaders) == 1 and len(members) >= 3 and all(
                m is leaders[0] or (m.get("streaming") and m.get("timeline") == leaders[0].get("timeline")
                                    and not m.get("lag")) for m in members):
            return True
        time.sleep(2)
    return False


def drills(salt, healthy, leader_of, runs: int, found: dict, sync: str) -> None:
    """pgbench and every mode of MODES ``runs`` times, in synchronous mode ``sync``."""
    set_sync(salt, sync)
    if healthy():
        found["pgbench"][sync] = tpcb_latency(leader_of())
        print(f"  pgbench tpcb-like through HAProxy, {sync}: {found['pgbench'][sync]}", flush=True)
    for mode in MODES:
        for attempt in range(1, runs + 1):
            if not healthy():
                print("  cluster not healthy before a drill: skipping", flush=True)
                continue
            found["runs"].append(one(salt, mode, sync, attempt))


def run(salt, healthy, leader_of, runs: int, found: dict) -> dict:
    """Everything above, on the lab as it runs; ``found`` filled as it goes (a stopped run keeps its rows)."""
    found.setdefault("runs", [])
    found.setdefault("pgbench", {})
    drills(salt, healthy, leader_of, runs, found, "on")
    for attempt in range(1, runs + 1):
        if not healthy():
            continue
        procs = busy(240)
        try:
            found["runs"].append(one(salt, "dcs-outage", "on", attempt, load=len(procs)))
        finally:
            for proc in procs:
                proc.terminate()
                proc.join()
    drills(salt, healthy, leader_of, runs, found, "quorum")
    set_sync(salt, "on")
    return found


def etcd_minority(salt, healthy, runs: int, found: dict) -> None:
    """The lab moved to three etcd members (TOPOLOGY=ha), partition-etcd-minority in both modes, then back."""
    for topology in ("ha", "seed"):
        env = dict(os.environ, TOPOLOGY=topology, PGHA_LAB_PILLAR=json.dumps({"pgha": {"drill": {"enabled": False}}}))
        up = subprocess.run([sys.executable, "-m", "lab", "up"], capture_output=True, text=True, check=False,
                            cwd=REPO, env=env)
        print(f"  lab moved to TOPOLOGY={topology}: exit {up.returncode}", flush=True)
        if up.returncode != 0:
            found[f"error_{topology}"] = up.stdout[-2000:]
            return
        if topology == "seed":
            return
        for sync in ("on", "quorum"):
            set_sync(salt, sync)
            for attempt in range(1, runs + 1):
                if healthy():
                    found["runs"].append(one(salt, "partition-etcd-minority", sync, attempt, topology="ha"))
        set_sync(salt, "on")


def lines(found: dict | None) -> list[str]:
    """The tables of bench/results.md."""
    if not found or not found.get("runs"):
        return []
    out = ["", (f"Network partitions and quorum commit (the namespaced lab; ttl 20, partition_s 30; "
                f"`python -m bench --partitions`, {found.get('started', '?')}"
                + (f"; partition-etcd-minority: `--etcd-minority`, {found['etcd_minority_started']}"
                   if found.get("etcd_minority_started") else "") + "):"), "",
           ("| mode | synchronous | runs | ok | lost | failed_writes | unavailable_s | write_gap_s | client_stall_s | "
            "rto_s | old_leader_writable_s | acked_on_old_after_promotion |"),
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((e["mode"], e["sync"], e["load"]) for e in found["runs"])
    for mode, sync, load in keys:
        entries = [e for e in found["runs"] if (e["mode"], e["sync"], e["load"]) == (mode, sync, load)]
        name = f"{mode} (every core busy)" if load else mode
        name += " (TOPOLOGY=ha)" if entries[0].get("topology") == "ha" else ""
        out.append(f"| {name} | {sync} | {len(entries)} | {sum(1 for e in entries if e['ok'])} | "
                   f"{sum(e['lost'] or 0 for e in entries)} | "
                   + " | ".join(cell([e.get(f) for e in entries]) for f in FIELDS[1:-1])
                   + f" | {sum(e.get('acked_on_old_after_promotion') or 0 for e in entries)} |")
    bench = found.get("pgbench") or {}
    if bench:
        out += ["", "pgbench tpcb-like, 4 clients, through HAProxy's leader port (median of 3 rounds of 10 s):", "",
                "| synchronous | latency_ms | tps |", "|---|---|---|"]
        out += [f"| {sync} | {v.get('latency_ms', '-')} | {v.get('tps', '-')} |" for sync, v in bench.items()]
    out += ["", ("Cells: median (min-max). write_gap_s: the longest time without an acknowledged write; "
                 "client_stall_s: the longest one write waited; old_leader_writable_s: "
                 "the last write the cut-off leader acknowledged to a client beside it, after the fault; "
                 "unavailable_s: the first failed write to the last.")]
    return out
