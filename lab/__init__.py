"""
The pgha lab: the seed's five hosts on one machine.

A salt-master on 127.0.0.1 and five salt-minions (postgres01, postgres02,
postgres03, etcd, haproxy), each minion with its own root under
``.lab/hosts/<id>`` where the formula puts that host's files, its own
supervisord (started by the formula, as its service manager) and its own
loopback address (pillar/pgha/lab.sls). Everything the lab starts leaves a
pid file under ``.lab``; ``down`` ends exactly those processes.

Parts: ``config`` (Salt's and the pillar's files, generated passwords),
``pki`` (a stand-in CA and the hosts' certificates), ``processes`` (start,
stop, by pid file) and ``run`` (the orchestration and its summary). Run it as
``python -m lab up|down|clean|status|show`` from the repository's root; tests
and the benchmark import it the same way.
"""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(REPO, ".lab")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
MINIONS = ("etcd", "postgres01", "postgres02", "postgres03", "haproxy")


def say(text: str = "") -> None:
    print(text, flush=True)
