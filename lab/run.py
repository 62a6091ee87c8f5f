"""
Running the orchestration on the lab and saying what happened: each stage
with its time (the whole Salt output goes to ``.lab/logs``), the failed
states' comments, then the cluster (``salt-run pgha.status``) and the
drill's outcome.
"""

from __future__ import annotations

import json
import os
import time

from lab import config, say
from lab.config import write
from lab.processes import Lab

DRILL_FIELDS = ("mode", "ok", "old_leader", "new_leader", "timeline_before", "timeline_after", "rto_s",
                "write_gap_s", "failed_writes", "acked", "lost", "rejoin_s", "replicas_streaming", "restored",
                "alert", "alert_s", "alert_resolved_s", "report", "picture")


def states_of(payload: dict) -> dict:
    """The per-stage results of an orchestration's JSON output (``{}`` when it did not run)."""
    states: dict = {}
    for value in payload.get("data", payload).values():
        if isinstance(value, dict):
            states.update(value)
    return states


def failed_details(changes: dict) -> list[str]:
    """The failed states inside a salt.state step, or a failed function's return."""
    ret = changes.get("ret")
    if not isinstance(ret, dict):
        return [json.dumps(changes, default=str)] if changes else []
    lines = []
    for minion, result in ret.items():
        if not isinstance(result, dict):
            lines.append(f"{minion}: {result}")
            continue
        lines += [f"{minion}: {key.split('_|-')[1]}: {state.get('comment')}"
                  for key, state in result.items() if isinstance(state, dict) and state.get("result") is False]
    return lines


def installed_versions(state: dict) -> str:
    """The Patroni each host has, from the hosts-ready stage (pgha_host.check)."""
    hosts = ((state.get("changes") or {}).get("ret") or {}).items()
    return ", ".join(f"{minion} {ret['patroni_version']}" for minion, ret in sorted(hosts)
                     if isinstance(ret, dict) and ret.get("patroni_version"))


def orchestrate(lab: Lab) -> tuple[int, dict]:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    log_path = os.path.join(lab.lab, "logs", f"orchestrate-{stamp}.json")
    say(f"running: salt-run -c .lab/etc/salt state.orchestrate pgha   (full output: {os.path.relpath(log_path, lab.repo)})")
    started = time.monotonic()
    ret = lab.salt("salt-run", "state.orchestrate", "pgha", "--out=json", check=False)
    elapsed = time.monotonic() - started
    write(log_path, ret.stdout + ("\n" + ret.stderr if ret.stderr else ""), mode=0o600)
    try:
        states = states_of(json.loads(ret.stdout))
    except ValueError:
        say(ret.stdout[-3000:] + ret.stderr[-3000:])
        return ret.returncode or 1, {}
    if not states:
        say("orchestration did not run: " + ret.stdout[-2000:])
    for key, state in sorted(states.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
        mark = {True: "ok  ", False: "FAIL", None: "skip"}.get(state.get("result"), "?   ")
        name = key.split("_|-")[1]
        say(f"  {mark} {name:<36} {state.get('duration', 0) / 1000:7.1f} s")
        if name == "pgha-orch-hosts-ready":
            say("       Patroni installed: " + (installed_versions(state) or "none yet"))
        if name in ("pgha-orch-etcd-membership", "pgha-orch-dcs-recovered", "pgha-orch-departed-retired"):
            retired = (state.get("changes") or {}).get("return")
            steps = (retired.get("steps") or []) if isinstance(retired, dict) else []  # a failed runner returns text
            for step in steps:
                say(f"       {step}")
        if name == "pgha-orch-backup-ready":
            ready = (state.get("changes") or {}).get("return")
            if isinstance(ready, dict) and ready.get("stanza"):
                first = ready.get("first_backup")
                say(f"       stanza {ready['stanza']} on {ready['node']}, pgbackrest check passed; "
                    + (f"first full backup {first['label']} ({first['took_s']} s)" if first else
                       "the repository already holds backups (salt-run pgha.backups)"))
        if name == "pgha-orch-monitor-targets-up":
            ready = (state.get("changes") or {}).get("return")
            if isinstance(ready, dict) and ready.get("ok"):
                say(f"       {ready.get('comment')}: Prometheus {ready.get('prometheus')}, "
                    f"Alertmanager {ready.get('alertmanager')}")
        if name == "pgha-orch-stopped-members-started":
            started = (state.get("changes") or {}).get("return")
            if isinstance(started, dict) and started.get("started"):
                say(f"       {started.get('comment')}")
        if state.get("result") is False:
            say("       " + str(state.get("comment", "")).replace("\n", "\n       ")[:4000])
            for line in failed_details(state.get("changes") or {}):
                say("       " + line[:2000])
    say(f"orchestration: exit {ret.returncode} in {elapsed:.1f} s")
    return ret.returncode, states


def show(lab: Lab, states: dict | None = None) -> None:
    """The cluster as the operator's status shows it, then the drill's outcome."""
    say("\nsalt-run pgha.status:")
    ret = lab.salt("salt-run", "pgha.status", check=False, timeout=120)
    say((ret.stdout or ret.stderr).rstrip())
    monitor = config.model(lab.lab).monitor
    if monitor.prometheus_url:
        say(f"\nmonitoring: Prometheus {monitor.prometheus_url}, Alertmanager {monitor.alertmanager_url} "
            "(salt-run pgha.alerts: the alerts firing and the targets)")
    for key, state in (states or {}).items():
        if "pgha-orch-failover-drill" in key:
            drill = (state.get("changes") or {}).get("return") or {}
            say("\nfailover drill:")
            if not isinstance(drill, dict):  # a runner that failed returns its text
                say(f"  {str(drill)[:2000]}")
                continue
            for field in DRILL_FIELDS:
                say(f"  {field:<20} {drill.get(field)}")
            if drill.get("timeline"):  # each moment, seconds since the fault (docs/explanation/drill.md)
                say(f"  {'timeline':<20} " + ", ".join(f"{name} {at}" for name, at in drill["timeline"].items()))
            for problem in drill.get("problems", []):
                say(f"  problem: {problem}")
    say(f"\nconnect through HAProxy: PGPASSFILE=.lab/pgpass psql -h {config.model(lab.lab).haproxy.write_address} "
        "-U postgres postgres")
