"""
Planned leader changes, phase by phase (`python -m bench --planned`, and a
phase of `make bench`; BENCH_PLANNED=0 skips it): `stop`, `switchover` and
the pooled `switchover` (synchronous mode on), BENCH_RUNS times each, with
the drill's timeline (pgha_timeline: each phase from its own observation)
and the medians of each phase, rto and client_stall.

Run twice in one bench: on the lab with its hosts' processes adopted by the
lab's reaper (lab/reaper.py, as `make lab` starts it) and on the same lab
restarted without it (PGHA_LAB_REAPER=0): what a second's late reaping of an
exited postmaster costs a planned change (docs/explanation/decisions.md).
"""

from __future__ import annotations

import statistics
import time

from bench import failover_drill

CASES = (("stop", "leader"), ("switchover", "leader"), ("switchover", "pooler"))
WITHOUT_REAPER = "without the lab's reaper (an exited postmaster reaped by the machine's init, about a second late)"
WITH_REAPER = "with the lab's reaper (as `make lab` runs it)"
FIELDS = ("rto_s", "client_stall_s", "failed_writes", "lost", "pooler_paused_s")


def one(salt, mode: str, path: str, attempt: int) -> dict:
    drill, code = failover_drill(salt, f"mode={mode}", f"path={path}", "alerts=False")
    entry = {"mode": mode if path == "leader" else f"{mode} ({path})", "attempt": attempt, "exit": code,
             **{key: drill.get(key) for key in ("ok", "problems", "timeline", "phases", "timeline_notes", *FIELDS)}}
    print(f"  {entry['mode']:<21} #{attempt}: ok={entry['ok']} rto={entry['rto_s']} "
          f"stall={entry['client_stall_s']} failed={entry['failed_writes']} lost={entry['lost']} "
          f"released={(entry['timeline'] or {}).get('leader_released')}", flush=True)
    return entry


def median(values: list) -> float | None:
    values = [v for v in values if isinstance(v, (int, float))]
    return round(statistics.median(values), 3) if values else None


def summary(rows: list[dict]) -> dict:
    """By case: runs, ok, medians of the measures and of each moment (seconds since the fault) and phase."""
    out = {}
    for mode in dict.fromkeys(row["mode"] for row in rows):
        mine = [row for row in rows if row["mode"] == mode]
        moments = list(dict.fromkeys(name for row in mine for name in (row.get("timeline") or {})))
        out[mode] = {"runs": len(mine), "ok": sum(1 for row in mine if row.get("ok")),
                     "lost": sum(row.get("lost") or 0 for row in mine),
                     **{key: median([row.get(key) for row in mine]) for key in FIELDS if key != "lost"},
                     "timeline": {name: median([(row.get("timeline") or {}).get(name) for row in mine])
                                  for name in moments}}
    return out


def run(salt, healthy, runs: int, label: str) -> dict:
    """Each case ``runs`` times on the lab as it runs; the rows and their summary, under ``label``."""
    rows, started = [], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for mode, path in CASES:
        for attempt in range(1, runs + 1):
            if not healthy():
                print("  cluster not healthy before a drill: stopping", flush=True)
                return {"label": label, "started": started, "rows": rows, "summary": summary(rows),
                        "error": "not healthy"}
            rows.append(one(salt, mode, path, attempt))
    return {"label": label, "started": started, "rows": rows, "summary": summary(rows)}


def lines(planned: dict | None) -> list[str]:
    """The report's section: per case, the medians of each moment since the fault, for each lab variant."""
    if not planned:
        return []
    out = ["", "## Planned leader changes, phase by phase", "",
           ("Medians of each moment, seconds since the fault (`python -m bench --planned`; synchronous mode on; "
           "pgha_timeline: each from its own observation). rto: the first write the new leader acknowledged "
           "through the drill's path; stall: the longest a client's write waited.")]
    for variant in planned.get("variants") or []:
        out += ["", f"### {variant['label']}", ""]
        cases = variant.get("summary") or {}
        moments = list(dict.fromkeys(name for case in cases.values() for name in case["timeline"]))
        out.append("| moment | " + " | ".join(cases) + " |")
        out.append("|---|" + "---|" * len(cases))
        for name in moments:
            out.append(f"| {name} | " + " | ".join(str(case["timeline"].get(name, "")) for case in cases.values()) + " |")
        for key in ("rto_s", "client_stall_s", "failed_writes", "pooler_paused_s"):
            out.append(f"| **{key}** | " + " | ".join(str(case.get(key, "")) for case in cases.values()) + " |")
        out.append("| **ok / runs, lost** | " + " | ".join(f"{case['ok']}/{case['runs']}, {case['lost']}"
                                                     for case in cases.values()) + " |")
    if planned.get("experiments"):
        out += ["", (f"One change at a time on the lab with its reaper ({planned.get('experiments_started')}, "
                     "BENCH_RUNS each, by hand with bench/planned.py's `one`; medians; a moment's median over "
                     "the runs that saw it: no write through the pooler within a drill is not counted):"), "",
                ("| case | runs ok | rto_s | client_stall_s | failed_writes per run | leader_taken | promoted | "
                "haproxy_up | first_write_pooler |"), "|---|---|---|---|---|---|---|---|---|"]
        for entry in planned["experiments"]:
            for mode, case in entry["summary"].items():
                moments = case["timeline"]
                rows = [row for row in entry["rows"] if row["mode"] == mode]
                failed = [row.get("failed_writes") for row in rows]
                pooled = sum(1 for row in rows if (row.get("timeline") or {}).get("first_write_pooler"))
                out.append(f"| {mode}: {entry['label']} | {case['ok']}/{case['runs']} | {case['rto_s']} | "
                           f"{case['client_stall_s']} | {failed} | {moments.get('leader_taken')} | "
                           f"{moments.get('promoted')} | {moments.get('haproxy_up')} | "
                           f"{moments.get('first_write_pooler')} (seen in {pooled} of {len(rows)}) |")
    return out
