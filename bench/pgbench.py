"""
pgbench through the lab's three client paths, side by side in one run:
straight to the leader, through HAProxy's leader port, through PgBouncer.
Each case (script x clients) runs the three paths one after the other, the
same duration each, several rounds interleaved so that the machine's noise
falls on all three alike; the medians go into the report with each path's
ratio to direct (TPS) and the latency it adds per transaction.

pgbench logs in as the formula's probe role (it is what PgBouncer accepts:
never a superuser) to a database of its own, ``pgbench``, made on the leader
by the superuser and owned by the probe role.

The select-only cases also go through a bare HAProxy that the benchmark
starts for its run beside the lab's (``bare``): TCP mode, the leader as its
one server, no health checks, HAProxy's defaults otherwise. What it adds to
direct is what forwarding through HAProxy costs on this machine; what the
lab's HAProxy adds beyond it is pgha's configuration (its checks, threads,
timeouts).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time

from lab import LAB, say
from lab.config import model

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
PSQL = "/usr/lib/postgresql/15/bin/psql"
DATABASE = "pgbench"
SCALE = 5
SCRIPTS = ("select-only", "tpcb-like")
CLIENTS = (1, 4)
PATHS = ("direct", "haproxy", "pooler")
HAPROXY = "/usr/sbin/haproxy"
BARE_PORT = 5499
BARE_CONFIG = """\
global
    maxconn 100
    user haproxy
    group haproxy
defaults
    mode tcp
    timeout client 30m
    timeout connect 4s
    timeout server 30m
listen bare
    bind {bind}
    server leader {server}
"""


def _secrets() -> dict:
    return model(LAB).secrets.as_dict(show=True)


def _env(password: str) -> dict:
    # the password reaches psql and pgbench through their environment only
    return dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")


def endpoints(leader: str) -> dict[str, tuple[str, int]]:
    """Where each client path reaches the leader: PostgreSQL itself, HAProxy's leader port, PgBouncer (the model's)."""
    cluster = model(LAB)
    port, proxy = cluster.settings["postgresql"]["port"], cluster.haproxy.write_address
    return {"direct": (cluster.address(leader), port), "haproxy": (proxy, cluster.haproxy.port),
            "pooler": (proxy, cluster.pooler.port)}


def prepare(leader: str) -> None:
    """The benchmark's database, owned by the probe role, and pgbench's tables in it (scale SCALE)."""
    secrets = _secrets()
    host, port = endpoints(leader)["direct"]
    su = _env(secrets["superuser_password"])
    exists = subprocess.run([PSQL, "-X", "-Atq", "-h", host, "-p", str(port), "-U", "postgres", "-d", "postgres",
                             "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                            capture_output=True, text=True, env=su, check=True, timeout=60).stdout.strip()
    if exists != "1":
        subprocess.run([PSQL, "-X", "-q", "-h", host, "-p", str(port), "-U", "postgres", "-d", "postgres",
                        "-c", f"CREATE DATABASE {DATABASE} OWNER {model(LAB).users['probe']}"],
                       capture_output=True, text=True, env=su, check=True, timeout=120)
    subprocess.run([PGBENCH, "-i", "-q", "-s", str(SCALE), "-h", host, "-p", str(port), "-U", model(LAB).users["probe"], DATABASE],
                   capture_output=True, text=True, env=_env(secrets["probe_password"]), check=True, timeout=600)


def run_one(endpoint: tuple[str, int], script: str, clients: int, seconds: int) -> dict:
    host, port = endpoint
    proc = subprocess.run(
        [PGBENCH, "-n", "-b", script, "-c", str(clients), "-j", str(clients), "-T", str(seconds),
         "-h", host, "-p", str(port), "-U", model(LAB).users["probe"], DATABASE],
        capture_output=True, text=True, env=_env(_secrets()["probe_password"]), check=False, timeout=seconds + 120)
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", proc.stdout, re.MULTILINE)
    latency = re.search(r"^latency average = ([\d.]+) ms", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not tps or not latency:
        return {"error": (proc.stderr or proc.stdout).strip()[-300:]}
    return {"tps": float(tps[1]), "latency_ms": float(latency[1])}


@contextlib.contextmanager
def bare_haproxy(leader: str):
    """A bare HAProxy (BARE_CONFIG) on the HAProxy node's address, port BARE_PORT, for as long as the block runs."""
    points = endpoints(leader)
    bind = (points["haproxy"][0], BARE_PORT)
    server = "{}:{}".format(*points["direct"])
    with tempfile.TemporaryDirectory(prefix="pgha-bench-") as tmp:
        config = os.path.join(tmp, "haproxy.cfg")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(BARE_CONFIG.format(bind=f"{bind[0]}:{bind[1]}", server=server))
        proc = subprocess.Popen([HAPROXY, "-db", "-f", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(bind, timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        why = proc.stderr.read().decode(errors="replace")[-300:] if proc.poll() is not None else "timeout"
                        raise RuntimeError(f"bare HAProxy did not listen on {bind[0]}:{bind[1]}: {why}")
                    time.sleep(0.1)
            yield bind
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def compare(leader: str, seconds: int = 15, rounds: int = 3) -> dict:
    """Every case through every path, ``rounds`` times interleaved; medians, ratios and added latency."""
    prepare(leader)
    with bare_haproxy(leader) as bare:
        return _compare(leader, dict(endpoints(leader), bare=bare), seconds, rounds)


def _compare(leader: str, points: dict, seconds: int, rounds: int) -> dict:
    cases = []
    for script in SCRIPTS:
        for clients in CLIENTS:
            paths = PATHS + (("bare",) if script == "select-only" else ())
            samples: dict[str, list[dict]] = {path: [] for path in paths}
            for _ in range(rounds):
                for path in paths:
                    samples[path].append(run_one(points[path], script, clients, seconds))
            cases.append(_case(script, clients, samples))
            say(f"  pgbench {script:<11} {clients} client(s): " + "; ".join(
                f"{path} {row['tps']} tps {row['latency_ms']} ms" for path, row in cases[-1]["paths"].items()))
    return {"seconds": seconds, "rounds": rounds, "scale": SCALE, "leader": leader, "cases": cases}


def _case(script: str, clients: int, samples: dict[str, list[dict]]) -> dict:
    paths = {}
    for path, runs in samples.items():
        good = [run for run in runs if "tps" in run]
        errors = [run["error"] for run in runs if "error" in run]
        paths[path] = {
            "tps": round(statistics.median(run["tps"] for run in good), 1) if good else None,
            "latency_ms": round(statistics.median(run["latency_ms"] for run in good), 4) if good else None,
            "runs": len(runs), "errors": errors,
        }
    direct = paths["direct"]
    for row in paths.values():
        if row["tps"] and direct["tps"]:
            row["ratio"] = round(row["tps"] / direct["tps"], 3)
            row["added_us"] = round((row["latency_ms"] - direct["latency_ms"]) * 1000, 1)
        else:
            row["ratio"] = row["added_us"] = None
    return {"script": script, "clients": clients, "paths": paths}


def table(result: dict) -> list[str]:
    """Markdown lines: one row per case and path."""
    heading = (f"pgbench, {result['seconds']} s per run, median of {result['rounds']} interleaved rounds, scale "
               f"{result['scale']}, as the probe role (TPS; average latency per transaction; ratio of TPS to "
               "direct; latency added to direct, in microseconds):")
    lines = [
        heading,
        "",
        "| script | clients | path | TPS | latency (ms) | ratio | added (us) |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in result["cases"]:
        for path, row in case["paths"].items():
            lines.append(f"| {case['script']} | {case['clients']} | {path} | {row['tps']} | {row['latency_ms']} | "
                         f"{row['ratio']} | {row['added_us']} |")
    return lines
