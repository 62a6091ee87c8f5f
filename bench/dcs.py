"""
The DCS lost and rebuilt, on the lab (`python -m bench --dcs-loss`, and a
phase of `make bench`; BENCH_DCS=0 skips it): the drill's `dcs-loss` mode
(every etcd member's data moved aside for the drill's outage_s, etcd
rebuilt, the running cluster recovered onto it) BENCH_RUNS times on a lab
made from nothing in the seed's topology (one etcd member), then in the
three-member one (TOPOLOGY=ha).
"""

from __future__ import annotations

from bench import cell, failover_drill

FIELDS = ("lost", "failed_writes", "unavailable_s", "recover_s")


def one(salt, topology: str, attempt: int) -> dict:
    """One dcs-loss drill through the operator's command: what it measured, and its verdict."""
    drill, code = failover_drill(salt, "mode=dcs-loss", timeout=1500)
    entry = {"topology": topology, "attempt": attempt, "exit": code,
             **{key: drill.get(key) for key in ("ok", "problems", "acked", "timeline_before", "timeline_after",
                                                "anonymous_refused", "system_identifier_before",
                                                "system_identifier_after", "outage_s", *FIELDS)}}
    print(f"  dcs-loss {topology:<5} #{attempt}: ok={entry['ok']} lost={entry['lost']} "
          f"failed={entry['failed_writes']} unavailable={entry['unavailable_s']} recover={entry['recover_s']} "
          f"anonymous_refused={entry['anonymous_refused']}", flush=True)
    return entry


def runs(salt, healthy, topology: str, count: int) -> list[dict]:
    """``count`` drills on the lab as it runs (``healthy()`` checked before each)."""
    done = []
    for attempt in range(1, count + 1):
        if not healthy():
            print("  cluster not healthy before a drill: stopping", flush=True)
            break
        done.append(one(salt, topology, attempt))
    return done


def lines(results: dict | None) -> list[str]:
    """The table of bench/results.md: one row per topology."""
    if not results:
        return []
    out = ["", (f"The DCS lost and rebuilt (`dcs-loss`: every etcd member's data moved aside for "
                f"{results.get('outage_s', 40)} s with the writer committing, etcd rebuilt, the cluster recovered onto "
                f"it; synchronous mode on; `python -m bench --dcs-loss`, {results.get('started', '?')}):"), "",
           "| topology | runs | ok | lost | failed_writes | unavailable_s | recover_s | anonymous refused |",
           "|---|---|---|---|---|---|---|---|"]
    for topology in ("seed", "ha"):
        entries = [entry for entry in results.get("runs", []) if entry["topology"] == topology]
        if not entries:
            continue
        out.append(f"| {topology} | {len(entries)} | {sum(1 for e in entries if e['ok'])} | "
                   f"{sum(e['lost'] or 0 for e in entries)} | "
                   + " | ".join(cell([e[f] for e in entries]) for f in FIELDS[1:])
                   + f" | {sum(1 for e in entries if e['anonymous_refused'])} of {len(entries)} |")
    out += ["", ("Cells: median (min-max); unavailable_s: the first failed write to the last; recover_s: the "
                 "recovery (Patroni restarted on the node that led, then on the others) to a healthy cluster.")]
    return out
