"""The lab's stopping of its processes (lab/processes.py): by pid, all of them, SIGKILL only after the grace."""

from __future__ import annotations

import subprocess
import sys
import time

from lab import processes

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def _started(code: str = "import time; print('ready', flush=True); time.sleep(60)") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_every_process_stopped_by_its_pid(capsys):
    procs = [_started(), _started()]
    try:
        processes.stop_pids([("first", procs[0].pid), ("second", procs[1].pid)], grace=30)
        assert not any(processes.alive(proc.pid) for proc in procs)
        out = capsys.readouterr().out
        assert f"stopping first (pid {procs[0].pid})" in out and f"stopping second (pid {procs[1].pid})" in out
        assert "SIGKILL" not in out
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_processes_stop_together_not_one_after_another(capsys):
    # two that ignore SIGTERM: each is given the same grace, counted once for both
    procs = [_started(IGNORES_TERM), _started(IGNORES_TERM)]
    try:
        started = time.monotonic()
        processes.stop_pids([("a", procs[0].pid), ("b", procs[1].pid)], grace=2)
        elapsed = time.monotonic() - started
        assert not any(processes.alive(proc.pid) for proc in procs)
        out = capsys.readouterr().out
        assert f"a (pid {procs[0].pid}) ignored SIGTERM for 2 s: SIGKILL" in out
        assert f"b (pid {procs[1].pid}) ignored SIGTERM for 2 s: SIGKILL" in out
        assert 2 <= elapsed < 3.9, elapsed  # one grace, not two
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_gone_and_unknown_pids_are_left_alone(capsys):
    proc = _started()
    proc.kill()
    proc.wait()
    processes.stop_pids([("gone", proc.pid), ("no pid file", None)], grace=1)
    assert capsys.readouterr().out == ""
