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


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def test_the_lab_reaper_adopts_what_its_command_leaves_and_reaps_it_at_once(tmp_path):
    """A daemonizing command's orphan is adopted by the reaper, gone (not a zombie) as it exits; then the reaper ends."""
    pidfile, orphan_file = tmp_path / "reaper.pid", tmp_path / "orphan.pid"
    reaper = subprocess.Popen([sys.executable, "-m", "lab.reaper", str(pidfile), "--", "bash", "-c",
                               f"sleep 1 & echo $! > {orphan_file}"], cwd=processes.REPO)
    try:
        deadline = time.monotonic() + 10
        while not (orphan_file.exists() and orphan_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        orphan = int(orphan_file.read_text())
        assert int(pidfile.read_text()) == reaper.pid
        time.sleep(0.2)  # bash has exited: its child is the reaper's now
        assert _parent_and_state(orphan) == (reaper.pid, "S")
        deadline, zombie_since = time.monotonic() + 10, None
        while (seen := _parent_and_state(orphan)) is not None and time.monotonic() < deadline:
            if seen[1] == "Z" and zombie_since is None:
                zombie_since = time.monotonic()
            time.sleep(0.005)
        assert _parent_and_state(orphan) is None
        # reaped as it exited (the machine's init may take a second: what Patroni would count as still running)
        assert zombie_since is None or time.monotonic() - zombie_since < 0.5
        assert reaper.wait(5) == 0 and not pidfile.exists()  # nothing left below it: it ended
    finally:
        reaper.kill()


def test_postgresql_hosts_stop_first_while_etcd_and_the_backup_host_still_answer(tmp_path, capsys, monkeypatch):
    # a leader's shutdown waits for its WAL to reach the backup host, and its Patroni gives up its key in etcd:
    # both still up when the PostgreSQL hosts stop
    programs = {"postgres01": ["patroni", "etcd"], "postgres02": ["patroni"], "postgres03": ["patroni"],
                "etcd": ["etcd"], "backup": ["pgbackrest"], "haproxy": ["haproxy"]}
    lab = processes.Lab(lab=str(tmp_path), minions=tuple(programs))
    monkeypatch.setattr(lab, "service_pids", list)
    procs = {}
    try:
        for minion, names in programs.items():
            conf = tmp_path / "hosts" / minion / "etc" / "pgha" / "supervisord.d"
            conf.mkdir(parents=True)
            for name in names:
                (conf / f"{name}.conf").write_text("[program]\n")
            procs[minion] = _started()
            run = tmp_path / "hosts" / minion / "run" / "pgha"
            run.mkdir(parents=True)
            (run / "supervisord.pid").write_text(f"{procs[minion].pid}\n")
        lab.down()
        assert not any(processes.alive(proc.pid) for proc in procs.values())
        order = [line.split("supervisord of ")[1].split()[0] for line in capsys.readouterr().out.splitlines()
                 if "stopping supervisord of" in line]
        assert order == ["postgres02", "postgres03", "postgres01", "etcd", "backup", "haproxy"]
    finally:
        for proc in procs.values():
            proc.kill()
