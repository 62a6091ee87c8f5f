"""
Monitoring on the lab (`python -m bench --alerts`, and a phase of `make
bench`; BENCH_ALERTS=0 skips it): the stop, crash and freeze drills
BENCH_RUNS times each, with the alert each must raise (PatroniLeaderChanged)
timed from the fault to Alertmanager (`alert_s`) and to its clearing
(`alert_resolved_s`); then what scraping costs: the CPU seconds per minute
of each exporter's process (and Prometheus's), on the lab as it runs.
"""

from __future__ import annotations

import os
import statistics
import time

from bench import failover_drill
from lab import REPO

MODES = ("stop", "crash", "freeze")
FIELDS = ("alert_s", "alert_resolved_s", "rto_s", "lost")
# supervisord's programs whose CPU is counted, on the hosts that run them
PROGRAMS = ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-postgres-exporter",
            "prometheus-pgbouncer-exporter")


def one(salt, mode: str, attempt: int) -> dict:
    drill, code = failover_drill(salt, f"mode={mode}")
    entry = {"mode": mode, "attempt": attempt, "exit": code,
             **{key: drill.get(key) for key in ("ok", "problems", "alert", "alerts_seen", *FIELDS)}}
    print(f"  {mode:<7} #{attempt}: ok={entry['ok']} alert={entry['alert']} alert_s={entry['alert_s']} "
          f"resolved_s={entry['alert_resolved_s']} rto={entry['rto_s']} lost={entry['lost']}", flush=True)
    return entry


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids(lab: str) -> dict[str, int]:
    """program@host -> pid, from each lab host's supervisord pid files of its programs (supervisorctl pid)."""
    import subprocess

    found = {}
    for host in sorted(os.listdir(os.path.join(lab, "hosts"))):
        conf = os.path.join(lab, "hosts", host, "etc", "pgha", "supervisord.conf")
        if not os.path.exists(conf):
            continue
        for program in PROGRAMS:
            ret = subprocess.run(["supervisorctl", "-c", conf, "pid", program], capture_output=True, text=True,
                                 check=False)
            if ret.stdout.strip().isdigit() and ret.stdout.strip() != "0":
                found[f"{program}@{host}"] = int(ret.stdout.strip())
    return found


def scrape_cost(seconds: float = 60.0) -> dict:
    """CPU seconds per minute of each monitoring process over ``seconds``, and the total per program."""
    pids = _pids(os.path.join(REPO, ".lab"))
    before = {name: _cpu_s(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    per = {name: round((_cpu_s(pid) - before[name]) * 60 / seconds, 3) for name, pid in pids.items()}
    totals: dict = {}
    for name, value in per.items():
        program = name.split("@")[0]
        totals[program] = round(totals.get(program, 0) + value, 3)
    return {"window_s": seconds, "per_process": per, "per_program": totals}


def run(salt, healthy, count: int) -> dict:
    out: dict = {"drills": [], "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out["scrape_cost"] = scrape_cost()
    for mode in MODES:
        for attempt in range(1, count + 1):
            if not healthy():
                print("  cluster not healthy before a drill: stopping", flush=True)
                return out
            out["drills"].append(one(salt, mode, attempt))
    return out


def lines(found: dict | None) -> list[str]:
    """The report's section: alert_s and alert_resolved_s per mode (median, min-max), and the scrape cost."""
    if not found:
        return []
    out = ["", "## Alerts (the drill reads Alertmanager)", "",
           "| mode | runs ok | alert fired | alert_s median (min-max) | alert_resolved_s median (min-max) | rto_s median | lost |",
           "|---|---|---|---|---|---|---|"]
    for mode in MODES:
        rows = [d for d in found.get("drills", []) if d["mode"] == mode]
        if not rows:
            continue

        def cell(key: str, rows: list = rows) -> str:
            values = [d[key] for d in rows if isinstance(d.get(key), (int, float))]
            return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})" if values else "-"

        fired = sum(1 for d in rows if d.get("alert_s") is not None)
        out.append(f"| {mode} | {sum(1 for d in rows if d['ok'])}/{len(rows)} | {fired}/{len(rows)} | {cell('alert_s')} "
                   f"| {cell('alert_resolved_s')} | {cell('rto_s')} | {sum(d.get('lost') or 0 for d in rows)} |")
    cost = found.get("scrape_cost") or {}
    if cost.get("per_program"):
        out += ["", (f"Scrape cost on the lab (CPU seconds per minute, summed over the hosts running it, "
                     f"over {cost['window_s']:.0f} s; 2 s scrapes, 1 s rule evaluation):"), "",
                "| process | CPU s / min |", "|---|---|"]
        out += [f"| {name} | {value} |" for name, value in sorted(cost["per_program"].items())]
    return out
