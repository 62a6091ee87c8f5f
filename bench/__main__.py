"""
The pgha benchmark, on the lab: the orchestration from nothing, an
idempotent highstate, and failover drills (stop, crash, switchover), each
several times, with synchronous replication on and off.

Writes bench/results.json (every run) and bench/results.md (median, min and
max per case). Run it with `make bench`; BENCH_RUNS sets the drills per case
(default 5). It rebuilds the lab from nothing first (`make lab-clean`).
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "lab"))

import pghalab

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
MODES = ("stop", "crash", "switchover")
FIELDS = ("rto_s", "write_gap_s", "promotion_s", "haproxy_switch_s", "rejoin_s", "lost", "acked")


def salt(tool: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [os.path.join(REPO, ".venv", "bin", tool), "-c", os.path.join(REPO, ".lab", "etc", "salt"), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def set_synchronous(enabled: bool) -> None:
    """Patroni's dynamic configuration, through the REST API of the first member that accepts it."""
    values = pghalab.secrets_file(os.path.join(REPO, ".lab", "pillar", "lab_secrets.sls"))
    token = base64.b64encode(f"patroni:{values['restapi_password']}".encode()).decode()
    body = json.dumps({"synchronous_mode": enabled}).encode()
    for address in ("127.0.0.15", "127.0.0.32", "127.0.0.6"):
        req = urllib.request.Request(
            f"http://{address}:8008/config", data=body, method="PATCH",
            headers={"Authorization": "Basic " + token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    break
        except OSError:
            continue
    time.sleep(5)


def healthy(timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if salt("salt-run", "pgha.check", "--out=json", timeout=120).returncode == 0:
            return True
        time.sleep(2)
    return False


def stats(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values), "n": len(values)}


def write_report(results: dict) -> None:
    """bench/results.json and the markdown table bench/results.md, from the runs."""
    drills = results["drills"]
    summary = []
    for synchronous in (True, False):
        for mode in MODES:
            runs = [d for d in drills if d["mode"] == mode and d["synchronous_mode"] == synchronous]
            row = {"synchronous_mode": synchronous, "mode": mode, "runs": len(runs),
                   "ok": sum(1 for d in runs if d["ok"]), "lost_total": sum(d["lost"] or 0 for d in runs)}
            for field in ("rto_s", "promotion_s", "haproxy_switch_s", "write_gap_s", "rejoin_s"):
                row[field] = stats([d.get(field) for d in runs])
            summary.append(row)
    results["summary"] = summary
    with open(os.path.join(REPO, "bench", "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    lines = [
        (
            f"Lab from nothing (`make lab` with packages installed): {results['lab_from_nothing_s']} s "
            f"({results['orchestration_line']}); idempotent `salt '*' state.apply`: median "
            f"{results['state_apply_s']['median']} s, changes {results['state_apply_changes']}."
        ),
        "",
        "| sync | mode | runs | ok | lost | rto_s | promotion_s | haproxy_switch_s | write_gap_s | rejoin_s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: dict) -> str:
        return "-" if value["median"] is None else f"{value['median']} ({value['min']}-{value['max']})"

    for row in summary:
        lines.append(
            f"| {'on' if row['synchronous_mode'] else 'off'} | {row['mode']} | {row['runs']} | {row['ok']} | "
            f"{row['lost_total']} | {cell(row['rto_s'])} | {cell(row['promotion_s'])} | "
            f"{cell(row['haproxy_switch_s'])} | {cell(row['write_gap_s'])} | {cell(row['rejoin_s'])} |"
        )
    lines += ["", "Cells: median (min-max) in seconds over the runs; lost: acknowledged writes missing, all runs."]
    with open(os.path.join(REPO, "bench", "results.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> int:
    results: dict = {"runs_per_case": RUNS, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    lab = [sys.executable, os.path.join(REPO, "lab", "pghalab.py")]

    print("orchestration from nothing (make lab-clean, then the lab's `up`)", flush=True)
    subprocess.run([*lab, "clean"], check=True, capture_output=True)
    started = time.monotonic()
    up = subprocess.run([*lab, "up"], capture_output=True, text=True, check=False)
    results["lab_from_nothing_s"] = round(time.monotonic() - started, 1)
    orchestration = [line for line in up.stdout.splitlines() if line.startswith("orchestration: exit")]
    results["orchestration_line"] = orchestration[-1] if orchestration else None
    if up.returncode != 0:
        print(up.stdout[-4000:])
        return 1
    print(f"  {results['lab_from_nothing_s']} s; {results['orchestration_line']}", flush=True)

    applies = []
    while len(applies) < 3:
        started = time.monotonic()
        ret = salt("salt", "*", "state.apply", "--out=json", "--static", "-t", "120")
        elapsed = round(time.monotonic() - started, 2)
        data = json.loads(ret.stdout or "{}")
        refused = {minion: states for minion, states in data.items() if not isinstance(states, dict)}
        if refused or len(data) != len(pghalab.MINIONS):
            # e.g. a minion still busy with the orchestration's last job: say so, try again
            print(f"  state.apply did not run everywhere ({sorted(data)}): {refused}", flush=True)
            time.sleep(10)
            continue
        applies.append(elapsed)
        changed = sum(1 for states in data.values() for state in states.values() if state.get("changes"))
        results.setdefault("state_apply_changes", []).append(changed)
    results["state_apply_s"] = stats(applies)
    print(f"  idempotent state.apply: {results['state_apply_s']}, changes {results['state_apply_changes']}", flush=True)

    drills: list = []
    for synchronous in (True, False):
        set_synchronous(synchronous)
        for mode in MODES:
            for attempt in range(RUNS):
                if not healthy():
                    print("  cluster not healthy before a drill: stopping", flush=True)
                    break
                ret = salt("salt-run", "pgha.failover_drill", f"mode={mode}", "--out=json")
                try:
                    drill = json.loads(ret.stdout)
                except ValueError:
                    drill = {"ok": False, "problems": [ret.stdout[-500:] + ret.stderr[-500:]]}
                entry = {"synchronous_mode": synchronous, "mode": mode, "attempt": attempt + 1,
                         "exit": ret.returncode, **{k: drill.get(k) for k in ("ok", "old_leader", "new_leader",
                                                                              "timeline_before", "timeline_after",
                                                                              "problems", *FIELDS)}}
                drills.append(entry)
                print(f"  sync={synchronous!s:<5} {mode:<10} #{attempt + 1}: ok={entry['ok']} rto={entry['rto_s']} "
                      f"gap={entry['write_gap_s']} lost={entry['lost']} rejoin={entry['rejoin_s']}", flush=True)
    set_synchronous(True)
    results["drills"] = drills
    write_report(results)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        with open(os.path.join(REPO, "bench", "results.json"), encoding="utf-8") as handle:
            write_report(json.load(handle))
        sys.exit(0)
    sys.exit(main())
