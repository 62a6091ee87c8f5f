"""
The lab's stand-in for a host's init: a child subreaper that starts one
command (a daemonizing salt-minion) and reaps, at once, every process
orphaned below it until none is left.

On a host with systemd, a process whose parent exits is adopted by systemd,
which reaps it the moment it exits. Where the lab runs, the machine's first
process may reap its orphans only every second or so; until then an exited
postmaster is a zombie, which Patroni (psutil) counts as still running: it
then takes the slow path of its shutdown (a second look at pg_control, one
more second's sleep and a round of REST calls) before giving up the leader
key, a second of a planned leader change that production does not pay.
Everything the lab's minions start (their supervisords, Patroni, the
postmasters Patroni leaves to their own) is adopted here instead.

    python -m lab.reaper PIDFILE -- COMMAND...
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def subreaper() -> None:
    """Make this process the subreaper of its descendants (Linux's prctl); refuses where it cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m lab.reaper PIDFILE -- COMMAND...", file=sys.stderr)
        return 2
    pidfile, command = argv[0], argv[2:]
    subreaper()
    with open(pidfile, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    try:
        subprocess.Popen(command)  # the lab's own command line; reaped below with the rest
        while True:
            try:
                os.wait()
            except ChildProcessError:  # nothing left below: done
                return 0
            except InterruptedError:
                continue
    finally:
        try:
            os.unlink(pidfile)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
