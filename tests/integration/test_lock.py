"""
One operation at a time, on the running cluster: two cluster-changing
commands started together, the second refused at once naming the holder,
exit non-zero, nothing changed by it; a runner killed with SIGKILL while it
holds the lock leaves it to expire within its lease (pgha:lock:ttl), after
which the next command takes it. Runs after test_cluster.py (same cluster).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import REPO

SALT_RUN = os.path.join(REPO, ".venv", "bin", "salt-run")
TTL = 15  # pgha:lock:ttl's default


def salt_run(salt_master, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([SALT_RUN, "-c", salt_master.config_dir, *args, "--out=json"], capture_output=True,
                          text=True, timeout=timeout, check=False)


def start(salt_master, *args: str) -> subprocess.Popen:
    return subprocess.Popen([SALT_RUN, "-c", salt_master.config_dir, *args, "--out=json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def holder(salt_master) -> dict | None:
    ret = salt_run(salt_master, "pgha.status", "table=False", timeout=120)
    return json.loads(ret.stdout)["lock"]


def wait_for_holder(salt_master, command: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = holder(salt_master)
        if found and found.get("command") == command:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{command} did not take the lock within {timeout} s (holder: {holder(salt_master)})")


def leader_and_timeline(salt_master) -> tuple[str, int]:
    data = json.loads(salt_run(salt_master, "pgha.status", "table=False", timeout=120).stdout)
    lead = next(m for m in data["members"] if m["role"] == "leader")
    return lead["name"], lead["timeline"]


def test_two_commands_together_the_second_refused_at_once_and_changing_nothing(salt_master, orchestration):
    assert salt_run(salt_master, "pgha.check").returncode == 0
    before = leader_and_timeline(salt_master)
    first, second = start(salt_master, "pgha.switchover"), start(salt_master, "pgha.switchover")
    outs = [proc.communicate(timeout=600) + (proc.returncode,) for proc in (first, second)]
    refused = [(out, code) for out, _, code in outs if "the cluster is locked by" in out]
    done = [(out, code) for out, _, code in outs if "the cluster is locked by" not in out]
    assert len(refused) == 1 and len(done) == 1, outs
    text, code = refused[0]
    assert code != 0
    line = json.loads(text)["pgha.switchover"]
    assert line.startswith("the cluster is locked by pgha.switchover (master ") and "since " in line
    assert line.endswith("nothing was done (wait=<seconds> to wait for it)")
    assert json.loads(done[0][0])["ok"] is True and done[0][1] == 0
    after = leader_and_timeline(salt_master)
    # one switchover, not two
    assert after[0] != before[0] and after[1] == before[1] + 1
    assert holder(salt_master) is None  # released


def test_a_runner_killed_holding_the_lock_leaves_it_to_expire_within_its_lease(salt_master, orchestration):
    holding = start(salt_master, "pgha.lock", "hold=600")
    try:
        found = wait_for_holder(salt_master, "pgha.lock")
        assert found["args"] == {"hold": 600}
        # while it is held every cluster-changing command is refused, at once
        started = time.monotonic()
        ret = salt_run(salt_master, "pgha.restart")
        assert ret.returncode != 0 and "the cluster is locked by pgha.lock hold=600" in ret.stdout
        assert time.monotonic() - started < 30
    finally:
        holding.send_signal(signal.SIGKILL)
        holding.wait(30)
    killed = time.monotonic()
    assert holder(salt_master) is not None  # nobody released it: its lease still runs
    ret = salt_run(salt_master, "pgha.lock", "hold=1", f"wait={TTL + 30}", timeout=120)
    assert ret.returncode == 0, ret.stdout
    assert json.loads(ret.stdout)["released"] is True
    # taken once the dead holder's lease expired: within its TTL (plus the keepalive's last refresh and Salt)
    assert time.monotonic() - killed <= TTL + 25
    assert holder(salt_master) is None


def test_a_stale_lock_broken_on_purpose(salt_master, orchestration):
    holding = start(salt_master, "pgha.lock", "hold=600")
    try:
        wait_for_holder(salt_master, "pgha.lock")
        ret = salt_run(salt_master, "pgha.unlock")
        assert ret.returncode != 0 and "break it with confirm=True only if its holder is gone" in ret.stdout
        ret = salt_run(salt_master, "pgha.unlock", "confirm=True")
        assert ret.returncode == 0 and json.loads(ret.stdout)["released"] is True
        assert holder(salt_master) is None
    finally:
        holding.send_signal(signal.SIGKILL)
        holding.wait(30)
