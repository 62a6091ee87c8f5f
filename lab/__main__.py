"""python -m lab up|down|clean|status|show: the one-machine lab (see lab/__init__.py)."""

from __future__ import annotations

import shutil
import sys
import time

from lab import LAB, netns, run, say
from lab.processes import Lab, alive, read_pid


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "up"
    lab = Lab()
    if command == "up":
        started = time.monotonic()
        lab.configure()
        say("pgha lab: " + ("each of the cluster's hosts in its own network namespace on 198.18.0.0/24"
                            if lab.namespaced else "the cluster's hosts on 127.0.0.x") + " (see docs/tutorials/lab.md)")
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
        if lab.namespaced:
            say(f"  network namespaces: {', '.join(netns.namespaces()) or 'none'}; bridge {netns.BRIDGE} "
                + ("up" if netns.bridge_up() else "absent"))
        return 0
    if command == "show":
        if lab.namespaced and not netns.bridge_up():  # nothing is sent towards the lab's network while it is absent
            say("the lab's network is down: make lab")
            return 1
        run.show(lab)
        return 0
    say(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
