"""python -m lab up|down|clean|status|show: the one-machine lab (see lab/__init__.py)."""

from __future__ import annotations

import shutil
import sys
import time

from lab import LAB, run, say
from lab.processes import Lab, alive, read_pid


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "up"
    lab = Lab()
    if command == "up":
        started = time.monotonic()
        say("pgha lab: the cluster's hosts on 127.0.0.x (see docs/tutorials/lab.md)")
        lab.configure()
        lab.start()
        code, states = run.orchestrate(lab)
        run.show(lab, states)
        say(f"\nmake lab: {'done' if code == 0 else 'FAILED'} in {time.monotonic() - started:.1f} s")
        return code
    if command == "down":
        lab.down()
        return 0
    if command == "clean":
        lab.down()
        shutil.rmtree(LAB, ignore_errors=True)
        say("removed .lab/")
        return 0
    if command == "status":
        for what, pidfile in lab.pidfiles():
            pid = read_pid(pidfile)
            say(f"  {what:<28} {'running, pid ' + str(pid) if alive(pid) else 'stopped'}")
        return 0
    if command == "show":
        run.show(lab)
        return 0
    say(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
