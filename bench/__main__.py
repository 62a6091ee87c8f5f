"""
The pgha benchmark, on the lab: the orchestration from nothing, an
idempotent highstate, and failover drills of every mode, each several
times, with synchronous replication on and off.

Writes bench/results.json (every run) and bench/results.md (median, min and
max per case; the README and docs/ link to it, they do not copy it). Run
it with `make bench` (python -m bench); BENCH_RUNS sets the drills per case
(default 5), BENCH_MODES the modes (comma-separated; default all but
etcd-member-loss, which needs three etcd members). It rebuilds the lab from
nothing first (`make lab-clean`). First, unless BENCH_DISTRO=0, it measures
the frozen leader with the distribution's Patroni (Debian 12's 3.0.2, on a
lab built for it) against PyPI's, the same drill on the same lab otherwise.
Then pgbench through the three client paths and a bare HAProxy (bench/pgbench.py; BENCH_PGBENCH=0
skips it; BENCH_PGBENCH_ROUNDS interleaved rounds, default 5, of
BENCH_PGBENCH_S seconds, default 10) and, the pooler being on in the lab, the switchover with the drill
writing through PgBouncer (`path=pooler`), BENCH_RUNS times; a fourth node
added and removed (BENCH_SCALE=0 skips it); etcd grown from one member to
three and back on the running lab, a writer committing meanwhile
(bench/membership.py; BENCH_ETCD=0 skips it); last, the three-member etcd
(TOPOLOGY=ha, from nothing; BENCH_HA=0 skips it): etcd-member-loss and stop,
BENCH_RUNS times each.
`python -m bench --report` rewrites the tables from bench/results.json;
`python -m bench --amend` measures BENCH_MODES again on a new lab and replaces their rows;
`python -m bench --dcs-loss` only the DCS lost and rebuilt (bench/dcs.py; BENCH_DCS=0 skips it in the full run);
`python -m bench --backups` only backups and restores (bench/backup.py: throughput against cp -a, restore times,
a replica from the repository, the restore drill, the total loss, the repository down; BENCH_BACKUP=0 skips it in the full run);
`python -m bench --alerts` only the alerts the stop, crash and freeze drills raise, timed, and the scrape cost
(bench/alerts.py, on the lab as it runs; BENCH_ALERTS=0 skips it in the full run);
`python -m bench --planned` only the planned leader changes phase by phase, with and without the lab's reaper
(bench/planned.py; the lab restarted for each; BENCH_PLANNED=0 skips it in the full run);
`python -m bench --partitions` only the partition modes and quorum commit (bench/partitions.py, on the namespaced
lab as it runs, moved to TOPOLOGY=ha and back; BENCH_PARTITIONS=0 skips it in the full run;
`--etcd-minority` only its last part, partition-etcd-minority on TOPOLOGY=ha);
`python -m bench --leader-changes` only WAL archiving through BENCH_LEADER_CHANGES switchovers in a row (default 40;
bench/archive.py, on the lab as it runs; 0 skips it in the full run);
`python -m bench --client-paths` measures only the client paths, on the lab
as it runs, into the same results; `python -m bench --etcd-members` only the
etcd membership changes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from bench import alerts, archive, backup, dcs, failover_drill, membership, partitions, pgbench, planned
from lab import MINIONS, REPO, netns
from lab.processes import Lab

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
MODES = tuple(os.environ.get("BENCH_MODES", "stop,crash,switchover,freeze,dcs-outage,sync-standby-loss").split(","))
# Modes that need synchronous replication (a synchronous standby to lose).
SYNC_ONLY = ("sync-standby-loss",)
FIELDS = ("rto_s", "write_gap_s", "promotion_s", "haproxy_switch_s", "sync_switch_s", "rejoin_s", "failed_writes",
          "unavailable_s", "client_stall_s")
COLUMNS = ("rto_s", "write_gap_s", "failed_writes", "unavailable_s", "client_stall_s", "promotion_s",
           "haproxy_switch_s", "rejoin_s")
# The lab with the distribution's Patroni (refused by default: older than 3.1).
DISTRO_PILLAR = {"pgha": {"lookup": {"patroni": {"install": "package"}}, "patroni": {"allow_unsafe_version": True}}}


def salt(tool: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return Lab().salt(tool, *args, check=False, timeout=timeout)


def set_synchronous(enabled: bool) -> None:
    """Patroni's dynamic configuration, through the operator's own function."""
    ret = salt("salt", "postgres01", "patroni.edit_config", json.dumps({"synchronous_mode": enabled}), "--out=json")
    if ret.returncode != 0:
        raise SystemExit(f"bench: cannot set synchronous_mode={enabled}: {ret.stdout}{ret.stderr}")
    time.sleep(5)


def healthy(timeout: float = 180) -> bool:
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


def lab_from_nothing(results: dict, pillar: dict | None = None, topology: str = "seed") -> bool:
    print(f"orchestration from nothing (make lab-clean, then the lab's `up`, TOPOLOGY={topology})", flush=True)
    lab = [sys.executable, "-m", "lab"]
    subprocess.run([*lab, "clean"], check=True, capture_output=True, cwd=REPO)
    env = dict(os.environ, PGHA_LAB_PILLAR=json.dumps(pillar or {}), TOPOLOGY=topology)
    started = time.monotonic()
    up = subprocess.run([*lab, "up"], capture_output=True, text=True, check=False, cwd=REPO, env=env)
    results["lab_from_nothing_s"] = round(time.monotonic() - started, 1)
    line = [text for text in up.stdout.splitlines() if text.startswith("orchestration: exit")]
    results["orchestration_line"] = line[-1] if line else None
    print(f"  {results['lab_from_nothing_s']} s; {results['orchestration_line']}", flush=True)
    if up.returncode != 0:
        print(up.stdout[-4000:])
    return up.returncode == 0


def idempotent_highstates(results: dict, count: int = 3) -> None:
    applies, changes = [], []
    while len(applies) < count:
        started = time.monotonic()
        ret = salt("salt", "*", "state.apply", "--out=json", "--static")
        elapsed = round(time.monotonic() - started, 2)
        data = json.loads(ret.stdout or "{}")
        refused = {minion: states for minion, states in data.items() if not isinstance(states, dict)}
        if refused or len(data) != len(MINIONS):
            # e.g. a minion still busy with the orchestration's last job: say so, try again
            print(f"  state.apply did not run everywhere ({sorted(data)}): {refused}", flush=True)
            time.sleep(10)
            continue
        applies.append(elapsed)
        changes.append(sum(1 for states in data.values() for state in states.values() if state.get("changes")))
    results["state_apply_s"] = stats(applies)
    results["state_apply_runs_s"] = applies
    results["state_apply_changes"] = changes
    print(f"  idempotent state.apply: {results['state_apply_s']}, changes {changes}", flush=True)


def members() -> list[dict]:
    """The members as pgha.status sees them."""
    ret = salt("salt-run", "pgha.status", "--out=json", timeout=120)
    try:
        return list(json.loads(ret.stdout)["members"])
    except (ValueError, KeyError, TypeError):
        return []


def patroni_versions() -> list:
    """The Patroni versions the members run."""
    return sorted({m.get("patroni_version") for m in members()})


def client_paths(results: dict) -> None:
    """pgbench straight to the leader, through HAProxy, through PgBouncer (bench/pgbench.py)."""
    leader = next((m["name"] for m in members() if m.get("role") == "leader"), None)
    if not leader:
        results["pgbench"] = {"error": "no leader"}
        return
    results["pgbench"] = pgbench.compare(leader, seconds=int(os.environ.get("BENCH_PGBENCH_S", "10")),
                                         rounds=int(os.environ.get("BENCH_PGBENCH_ROUNDS", "5")))


def distro_against_pypi(results: dict) -> None:
    """The frozen leader with Debian's Patroni, on a lab built for it: lost writes, and whether it recovers."""
    probe: dict = {}
    if not lab_from_nothing(probe, DISTRO_PILLAR):
        results["distro_freeze"] = {"error": "the lab did not come up with the distribution's Patroni"}
        return
    runs = []
    for attempt in range(1, RUNS + 1):
        if not healthy():
            print("  cluster not healthy before a drill: stopping", flush=True)
            break
        runs.append(one_drill("freeze", True, attempt))
    results["distro_freeze"] = {"patroni": patroni_versions(), "runs": runs}


def one_drill(mode: str, synchronous: bool, attempt: int, path: str = "leader", *extra: str) -> dict:
    drill, code = failover_drill(salt, f"mode={mode}", f"path={path}", *extra)
    entry = {"synchronous_mode": synchronous, "mode": mode if path == "leader" else f"{mode} ({path})",
             "attempt": attempt, "exit": code,
             **{k: drill.get(k) for k in ("ok", "old_leader", "new_leader", "leader_after", "timeline_before",
                                          "timeline_after", "problems", "restored", "acked", "lost", *FIELDS)}}
    print(f"  sync={synchronous!s:<5} {entry['mode']:<21} #{attempt}: ok={entry['ok']} lost={entry['lost']} "
          f"failed={entry['failed_writes']} rto={entry['rto_s']} gap={entry['write_gap_s']} "
          f"stall={entry['client_stall_s']} rejoin={entry['rejoin_s']}", flush=True)
    return entry


def drills(results: dict) -> None:
    runs: list = []
    for synchronous in (True, False):
        set_synchronous(synchronous)
        for mode in MODES:
            if mode in SYNC_ONLY and not synchronous:
                continue
            for attempt in range(1, RUNS + 1):
                if not healthy():
                    print("  cluster not healthy before a drill: stopping", flush=True)
                    results["drills"] = runs
                    return
                runs.append(one_drill(mode, synchronous, attempt))
    set_synchronous(True)
    runs += pooled_switchovers()
    results["drills"] = runs


def pooled_switchovers() -> list[dict]:
    """The switchover with the drill writing through PgBouncer (paused for the move), RUNS times."""
    runs = []
    for attempt in range(1, RUNS + 1):
        if not healthy():
            print("  cluster not healthy before a drill: stopping", flush=True)
            break
        runs.append(one_drill("switchover", True, attempt, path="pooler"))
    return runs


def scale_out_and_in(results: dict) -> None:
    """A fourth PostgreSQL node added through the lab's nodes file, then removed: each orchestration timed."""
    lab = Lab()
    nodes_sls = lab.nodes_sls()
    address = netns.lab_address("127.0.0.40") if lab.namespaced else "127.0.0.40"
    fourth = {"pgha": {"nodes": {"postgres04": {"address": address, "roles": ["postgresql"]}}}}
    steps = {}
    for step, content in (("add", fourth), ("remove", {})):
        with open(nodes_sls, "w", encoding="utf-8") as handle:
            json.dump(content, handle)  # JSON is YAML
        started = time.monotonic()
        up = subprocess.run([sys.executable, "-m", "lab", "up"], capture_output=True, text=True, check=False, cwd=REPO,
                            env=dict(os.environ, PGHA_LAB_PILLAR=json.dumps({"pgha": {"drill": {"enabled": False}}})))
        elapsed = round(time.monotonic() - started, 1)
        names = sorted(m["name"] for m in members())
        steps[step] = {"exit": up.returncode, "s": elapsed, "members": names, "healthy": healthy(60)}
        print(f"  scale {step}: exit {up.returncode} in {elapsed} s, members {names}", flush=True)
    results["scaling"] = steps
    subprocess.run([sys.executable, "-m", "lab", "up"], capture_output=True, check=False, cwd=REPO)  # the drill on again


def etcd_membership(results: dict, run: str | None = None) -> None:
    """On the running seed lab: etcd grown to three members and back to one (bench/membership.py)."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    steps = []
    for label, topology in (("one member to three", "ha"), ("three to one", "seed")):
        step = dict(membership.change(topology), label=label)
        ret = salt("salt", "etcd", "etcd_cluster.members", "--out=json", timeout=120)
        try:
            step["members"] = sorted(m["name"] for m in json.loads(ret.stdout)["etcd"])
        except (ValueError, KeyError, TypeError):
            step["members"] = None
        steps.append(step)
        print(f"  etcd {label}: exit {step['exit']} in {step['s']} s (stage {step['stage_s']} s), members "
              f"{step['members']}, acked {step['acked']} failed {step['failed']} lost {step['lost']}", flush=True)
        if step["exit"] != 0:
            break
    results["etcd_membership"] = {"steps": steps, "started": started, "run": run}
    subprocess.run([sys.executable, "-m", "lab", "up"], capture_output=True, check=False, cwd=REPO)  # the drill on again


def _saved_results_on_a_healthy_lab() -> dict | None:
    """bench/results.json, for a run on the lab as it is; None (and why, printed) when the lab is not healthy."""
    with open(os.path.join(REPO, "bench", "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    if not healthy(60):
        print("bench: the lab is not up and healthy (make lab)", flush=True)
        return None
    return results


def etcd_membership_only() -> int:
    """--etcd-members: on the running seed lab, etcd grown and shrunk, merged into bench/results.json."""
    results = _saved_results_on_a_healthy_lab()
    if results is None:
        return 1
    etcd_membership(results, run="`python -m bench --etcd-members`")
    write_report(results)
    return 0


def three_etcd_members(results: dict) -> None:
    """TOPOLOGY=ha from nothing: one etcd member lost (each in turn), and the stop drill, RUNS times each."""
    probe: dict = {}
    if not lab_from_nothing(probe, topology="ha"):
        results["ha"] = {"error": "the lab did not come up with TOPOLOGY=ha"}
        return
    etcd = ("etcd", "postgres01", "postgres02")
    runs = []
    for mode in ("etcd-member-loss", "stop"):
        for attempt in range(1, RUNS + 1):
            if not healthy():
                print("  cluster not healthy before a drill: stopping", flush=True)
                break
            extra = (f"member={etcd[(attempt - 1) % len(etcd)]}",) if mode == "etcd-member-loss" else ()
            runs.append(one_drill(mode, True, attempt, "leader", *extra))
    results["ha"] = {"lab_from_nothing_s": probe["lab_from_nothing_s"], "runs": runs}


def dcs_losses(results: dict) -> int:
    """The DCS lost and rebuilt, RUNS times on a seed lab from nothing, then on a TOPOLOGY=ha one (bench/dcs.py)."""
    found: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": [], "outage_s": 40}
    for topology in ("seed", "ha"):
        probe: dict = {}
        if not lab_from_nothing(probe, topology=topology):
            found[f"error_{topology}"] = f"the lab did not come up with TOPOLOGY={topology}"
            continue
        found["runs"] += dcs.runs(salt, healthy, topology, RUNS)
    results["dcs_loss"] = found
    return 0 if all(entry["ok"] for entry in found["runs"]) and found["runs"] else 1


def phase_only(phase) -> int:
    """One phase alone (--dcs-loss, --alerts), its rows added to bench/results.json and the report rewritten."""
    with open(os.path.join(REPO, "bench", "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    code = phase(results)
    write_report(results)
    return code


def backups_phase(results: dict) -> int:
    """Backups and restores on the lab as it runs (bench/backup.py), RUNS times each."""
    if not healthy():
        results["backups"] = {"error": "the cluster was not healthy"}
        return 1
    results["backups"] = backup.run(salt, RUNS)
    point = results["backups"].get("point") or []
    return 0 if point and all(entry.get("ok") for entry in point) else 1


def leader_changes_phase(results: dict) -> int:
    """WAL archiving through BENCH_LEADER_CHANGES switchovers in a row (bench/archive.py), on the lab as it runs."""
    if not healthy():
        results["leader_changes"] = {"error": "the cluster was not healthy"}
        return 1
    results["leader_changes"] = archive.run(salt, healthy)
    return 0 if results["leader_changes"]["ok"] else 1


def alerts_phase(results: dict) -> int:
    """The alert each leader-moving drill raises, timed, and the scrape cost (bench/alerts.py)."""
    if not healthy():
        results["alerts"] = {"error": "the cluster was not healthy"}
        return 1
    results["alerts"] = alerts.run(salt, healthy, RUNS)
    rows = results["alerts"].get("drills") or []
    return 0 if rows and all(entry.get("ok") for entry in rows) else 1


def restart_lab(reaper: bool) -> bool:
    """The lab down and up again (its data kept), its minions under the lab's reaper or not (PGHA_LAB_REAPER)."""
    lab = [sys.executable, "-m", "lab"]
    subprocess.run([*lab, "down"], check=True, capture_output=True, cwd=REPO)
    env = dict(os.environ, PGHA_LAB_REAPER="1" if reaper else "0")
    up = subprocess.run([*lab, "up"], capture_output=True, text=True, check=False, cwd=REPO, env=env)
    if up.returncode != 0:
        print(up.stdout[-4000:])
    return up.returncode == 0


def planned_phase(results: dict) -> int:
    """Planned leader changes phase by phase (bench/planned.py): the lab without the lab's reaper, then with it."""
    variants = []
    for reaper, label in ((False, planned.WITHOUT_REAPER), (True, planned.WITH_REAPER)):
        print(f"planned leader changes, {label}", flush=True)
        if not restart_lab(reaper):
            results["planned"] = {"variants": variants, "error": f"the lab did not come up ({label})"}
            return 1
        variants.append(planned.run(salt, healthy, RUNS, label))
    # the single changes measured apart (bench/planned.py's experiments) are kept
    results["planned"] = dict(results.get("planned") or {}, variants=variants, started=variants[0]["started"])
    return 0 if all(row.get("ok") for variant in variants for row in variant["rows"]) else 1


def partitions_phase(results: dict, minority_only: bool = False) -> int:
    """
    Partitions and quorum commit on the namespaced lab as it runs (bench/partitions.py), saved as they come;
    ``minority_only`` (--etcd-minority): only partition-etcd-minority, its rows replacing the saved ones.
    """
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if minority_only:
        found = results.setdefault("partitions", {"started": started, "runs": []})
        found["runs"] = [entry for entry in found.get("runs", []) if entry["mode"] != "partition-etcd-minority"]
        for key in ("error", "error_ha", "error_seed"):
            found.pop(key, None)
        found["etcd_minority_started"] = started
    else:
        found = results["partitions"] = {"started": started, "runs": []}
    if not Lab().namespaced:
        found["error"] = "the lab is not namespaced (LAB_NETWORK=loopback): no partition can be made"
        return 1
    if not netns.bridge_up():  # nothing is sent towards the lab's addresses while its network is absent
        found["error"] = "the lab's network is down: make lab"
        return 1

    def leader() -> str:
        return next((m["name"] for m in members() if m.get("role") == "leader"), "postgres01")

    def healthy_saved(timeout: float = 180) -> bool:
        write_report(results)  # every row so far kept, whatever stops the run
        return partitions.streaming(salt, timeout)

    if not minority_only:
        partitions.run(salt, healthy_saved, leader, RUNS, found)
    partitions.etcd_minority(salt, healthy_saved, RUNS, found)
    return 0 if found["runs"] and all(entry["ok"] for entry in found["runs"]) else 1


def backups_only() -> int:
    """--backups: only backups and restores, on a lab from nothing, their rows added to bench/results.json."""
    with open(os.path.join(REPO, "bench", "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    probe: dict = {}
    if not lab_from_nothing(probe):
        return 1
    code = backups_phase(results)
    write_report(results)
    return code


def amend() -> int:
    """
    --amend: a lab from nothing and only BENCH_MODES (sync on and off, then the pooled switchover), their rows
    replacing those of bench/results.json; the table says which rows come from this run and why (BENCH_AMEND_WHY).
    """
    with open(os.path.join(REPO, "bench", "results.json"), encoding="utf-8") as handle:
        results = json.load(handle)
    probe: dict = {}
    if not lab_from_nothing(probe):
        return 1
    fresh: dict = {}
    drills(fresh)
    replaced = set(MODES) | {"switchover (pooler)"}
    results["drills"] = [d for d in results["drills"] if d["mode"] not in replaced] + fresh.get("drills", [])
    results["amended"] = {"modes": sorted(replaced), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "why": os.environ.get("BENCH_AMEND_WHY", "")}
    write_report(results)
    return 0


def client_paths_only() -> int:
    """--client-paths: on the running lab, pgbench and the pooled switchovers, merged into bench/results.json."""
    results = _saved_results_on_a_healthy_lab()
    if results is None:
        return 1
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    client_paths(results)
    kept = [d for d in results.get("drills", []) if d["mode"] != "switchover (pooler)"]
    results["drills"] = kept + pooled_switchovers()
    results["client_paths"] = {"started": started}
    if results.get("amended"):
        results["amended"]["modes"] = [m for m in results["amended"]["modes"] if m != "switchover (pooler)"]
    write_report(results)
    return 0


def summary(results: dict) -> list[dict]:
    rows = []
    for synchronous in (True, False):
        for mode in dict.fromkeys(d["mode"] for d in results["drills"]):
            runs = [d for d in results["drills"] if d["mode"] == mode and d["synchronous_mode"] == synchronous]
            if not runs:
                continue
            row = {"synchronous_mode": synchronous, "mode": mode, "runs": len(runs),
                   "ok": sum(1 for d in runs if d["ok"]), "lost_total": sum(d["lost"] or 0 for d in runs)}
            row.update({field: stats([d.get(field) for d in runs]) for field in COLUMNS})
            rows.append(row)
    return rows


def table(results: dict) -> str:
    """The markdown of bench/results.md."""
    def cell(value: dict) -> str:
        return "-" if value["median"] is None else f"{value['median']} ({value['min']}-{value['max']})"

    lines = [
        (f"Lab from nothing (`make lab` with packages installed): {results['lab_from_nothing_s']} s "
        f"({results['orchestration_line']}); idempotent `salt '*' state.apply`: median "
        f"{results['state_apply_s']['median']} s (runs {results.get('state_apply_runs_s')}), "
        f"changes {results['state_apply_changes']}."),
        "",
        "| sync | mode | runs | ok | lost | " + " | ".join(COLUMNS) + " |",
        "|---" * (5 + len(COLUMNS)) + "|",
    ]
    for row in results["summary"]:
        lines.append(f"| {'on' if row['synchronous_mode'] else 'off'} | {row['mode']} | {row['runs']} | {row['ok']} | "
                     f"{row['lost_total']} | " + " | ".join(cell(row[field]) for field in COLUMNS) + " |")
    lines += ["", ("Cells: median (min-max) over the runs, in seconds (failed_writes: attempts); lost: acknowledged "
                  "writes missing, all runs together. `switchover (pooler)`: the drill writes through PgBouncer, "
                  "paused for the move.")]
    if results.get("amended"):
        amended = results["amended"]
        lines += ["", (f"Rows {', '.join(amended['modes'])}: from a second run ({amended['started']}, `python -m bench "
                       f"--amend`), the others from the full run ({results['started']}). {amended['why']}").rstrip()]
    if results.get("client_paths"):  # its pooled switchovers, unless a later --amend measured them again
        what = ("The pgbench table" if "switchover (pooler)" in (results.get("amended") or {}).get("modes", [])
                else "Row switchover (pooler) and the pgbench table")
        lines += ["", (f"{what}: from `python -m bench --client-paths` on the "
                       f"lab as it ran ({results['client_paths']['started']}).")]
    lines += distro_lines(results.get("distro_freeze"))
    lines += scaling_lines(results.get("scaling")) + membership.lines(results.get("etcd_membership"))
    lines += ha_lines(results.get("ha"), cell)
    lines += dcs.lines(results.get("dcs_loss"))
    lines += backup.lines(results.get("backups"))
    lines += archive.lines(results.get("leader_changes"))
    lines += alerts.lines(results.get("alerts"))
    lines += planned.lines(results.get("planned"))
    lines += partitions.lines(results.get("partitions"))
    if results.get("pgbench", {}).get("cases"):
        lines += ["", *pgbench.table(results["pgbench"])]
    return "\n".join(lines) + "\n"


def distro_lines(distro: dict | None) -> list[str]:
    """The frozen leader with the distribution's Patroni, run by run."""
    if not distro:
        return []
    if "runs" not in distro:
        return ["", f"Frozen leader with the distribution's Patroni: {distro.get('error')}"]
    runs = distro["runs"]
    lost = [run["lost"] for run in runs]
    return ["", (f"Frozen leader with the distribution's Patroni ({', '.join(distro['patroni']) or '?'}), "
                 f"synchronous mode on, {len(runs)} runs: ok in {sum(1 for run in runs if run['ok'])}, "
                 f"acknowledged writes lost per run {lost} (PyPI's Patroni: the `freeze` rows above).")]


def scaling_lines(scaling: dict | None) -> list[str]:
    if not scaling:
        return []
    add, remove = scaling.get("add", {}), scaling.get("remove", {})
    return ["", (f"Adding a fourth PostgreSQL node (the lab's nodes file, then `make lab`, drill off): exit "
                 f"{add.get('exit')} in {add.get('s')} s, members {add.get('members')}, healthy {add.get('healthy')}; "
                 f"removing it: exit {remove.get('exit')} in {remove.get('s')} s, members {remove.get('members')}, "
                 f"healthy {remove.get('healthy')}.")]


def ha_lines(ha: dict | None, cell) -> list[str]:
    """The three-member etcd topology's drills, one row per mode."""
    if not ha:
        return []
    if "runs" not in ha:
        return ["", f"Three etcd members (TOPOLOGY=ha): {ha.get('error')}"]
    title = (f"Three etcd members (`make lab TOPOLOGY=ha`, from nothing in {ha['lab_from_nothing_s']} s; "
             "synchronous mode on; etcd-member-loss stops the etcd host's, postgres01's and postgres02's member "
             "in turn for 40 s):")
    lines = ["", title, "", "| mode | runs | ok | lost | failed_writes | rto_s | write_gap_s |",
             "|---|---|---|---|---|---|---|"]
    for mode in dict.fromkeys(run["mode"] for run in ha["runs"]):
        runs = [run for run in ha["runs"] if run["mode"] == mode]
        lines.append(f"| {mode} | {len(runs)} | {sum(1 for r in runs if r['ok'])} | {sum(r['lost'] or 0 for r in runs)} | "
                     + " | ".join(cell(stats([r.get(f) for r in runs])) for f in ("failed_writes", "rto_s", "write_gap_s"))
                     + " |")
    return lines


def write_report(results: dict) -> None:
    """bench/results.json and bench/results.md, from the runs."""
    results["summary"] = summary(results)
    with open(os.path.join(REPO, "bench", "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    text = table(results)
    with open(os.path.join(REPO, "bench", "results.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


def main() -> int:
    results: dict = {"runs_per_case": RUNS, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if os.environ.get("BENCH_DISTRO", "1") != "0":
        distro_against_pypi(results)
    if not lab_from_nothing(results):
        return 1
    results["patroni"] = patroni_versions()
    idempotent_highstates(results)
    if os.environ.get("BENCH_PGBENCH", "1") != "0":
        client_paths(results)
    drills(results)
    if os.environ.get("BENCH_PLANNED", "1") != "0":
        planned_phase(results)
    if os.environ.get("BENCH_SCALE", "1") != "0":
        scale_out_and_in(results)
    if os.environ.get("BENCH_ETCD", "1") != "0":
        etcd_membership(results)
    if os.environ.get("BENCH_BACKUP", "1") != "0":
        backups_phase(results)
    if os.environ.get("BENCH_ALERTS", "1") != "0":
        alerts_phase(results)
    if archive.CHANGES:
        leader_changes_phase(results)
    write_report(results)  # what is measured so far, kept if the next phase fails
    if os.environ.get("BENCH_HA", "1") != "0":
        three_etcd_members(results)
    write_report(results)
    if os.environ.get("BENCH_DCS", "1") != "0":
        dcs_losses(results)
        write_report(results)
    if os.environ.get("BENCH_PARTITIONS", "1") != "0" and lab_from_nothing({}):
        partitions_phase(results)
        write_report(results)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--client-paths"]:
        sys.exit(client_paths_only())
    if sys.argv[1:] == ["--etcd-members"]:
        sys.exit(etcd_membership_only())
    if sys.argv[1:] == ["--dcs-loss"]:
        sys.exit(phase_only(dcs_losses))
    if sys.argv[1:] == ["--backups"]:
        sys.exit(backups_only())
    if sys.argv[1:] == ["--alerts"]:
        sys.exit(phase_only(alerts_phase))  # on the lab as it runs
    if sys.argv[1:] == ["--partitions"]:
        sys.exit(phase_only(partitions_phase))  # on the lab as it runs; moves it to TOPOLOGY=ha and back
    if sys.argv[1:] == ["--etcd-minority"]:
        sys.exit(phase_only(lambda results: partitions_phase(results, minority_only=True)))  # TOPOLOGY=ha and back
    if sys.argv[1:] == ["--leader-changes"]:
        sys.exit(phase_only(leader_changes_phase))  # on the lab as it runs
    if sys.argv[1:] == ["--planned"]:
        sys.exit(phase_only(planned_phase))  # restarts the lab (data kept) twice
    if sys.argv[1:] == ["--amend"]:
        sys.exit(amend())
    if sys.argv[1:] == ["--report"]:
        with open(os.path.join(REPO, "bench", "results.json"), encoding="utf-8") as handle:
            write_report(json.load(handle))
        sys.exit(0)
    sys.exit(main())
