"""
etcd's members changed on the running lab as a DBA changes them: the seed's
one member grown to three (`make lab TOPOLOGY=ha`: postgres01 and postgres02
join) and back to one (`TOPOLOGY=seed`: they leave), the drill off, while
the drill's own writer commits through HAProxy's leader port as the probe
role. Each orchestration is timed with its membership stage; the writes
acknowledged, failed and lost are counted (every acknowledged row read back,
then deleted: the formula's database keeps nothing).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import uuid

import psycopg

from lab import LAB, REPO
from lab.config import model

STAGE = re.compile(r"pgha-orch-etcd-membership\s+([\d.]+) s")


def _drill_engine():
    """_utils/pgha_drill.py (its Writer and table), loaded as the runner loads it."""
    spec = importlib.util.spec_from_file_location("pgha_drill", os.path.join(REPO, "_utils", "pgha_drill.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dsn() -> str:
    """The probe role's connection through HAProxy's leader port, as the drill makes it (the lab's model)."""
    return _drill_engine().probe_dsn(model(LAB))


def change(topology: str) -> dict:
    """`python -m lab up` with TOPOLOGY=``topology`` and the drill off, the writer running throughout."""
    engine, dsn = _drill_engine(), _dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(engine.TABLE_DDL)
    run_id = f"bench-etcd-{uuid.uuid4().hex[:8]}"
    writer = engine.Writer(dsn, run_id, pause=0.05)
    writer.start()
    started = time.monotonic()
    up = subprocess.run([sys.executable, "-m", "lab", "up"], capture_output=True, text=True, check=False, cwd=REPO,
                        env=dict(os.environ, TOPOLOGY=topology,
                                 PGHA_LAB_PILLAR=json.dumps({"pgha": {"drill": {"enabled": False}}})))
    elapsed = round(time.monotonic() - started, 1)
    writer.stopping.set()
    writer.join(30)
    acked = {record["seq"] for record in writer.records if record["acked"]}
    with psycopg.connect(dsn, autocommit=True) as conn:
        present = {row[0] for row in conn.execute("SELECT seq FROM pgha_drill WHERE run = %s", (run_id,))}
        conn.execute("DELETE FROM pgha_drill WHERE run = %s", (run_id,))
    stage = STAGE.search(up.stdout)
    return {"topology": topology, "exit": up.returncode, "s": elapsed, "stage_s": float(stage[1]) if stage else None,
            "acked": len(acked), "failed": sum(1 for record in writer.records if record["error"]),
            "lost": len(acked - present)}


def lines(found: dict | None) -> list[str]:
    """The report's paragraph."""
    if not found:
        return []
    if "steps" not in found:
        return ["", f"etcd's members changed on the running lab: {found.get('error')}"]
    where = f" ({found['run']}, {found['started']})" if found.get("run") else ""
    parts = []
    for step in found["steps"]:
        parts.append(f"{step['label']} (`TOPOLOGY={step['topology']}`): exit {step['exit']} in {step['s']} s "
                     f"(membership stage {step['stage_s']} s), etcd members {step.get('members')}, "
                     f"{step['acked']} writes acknowledged, {step['failed']} failed, {step['lost']} lost")
    return ["", (f"etcd's members changed on the running lab{where}, drill off, the drill's writer committing through "
                 "HAProxy meanwhile: " + "; ".join(parts) + ".")]
