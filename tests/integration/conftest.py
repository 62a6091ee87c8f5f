"""
A real cluster for the integration tests: a salt-master and the five minions
(pytest-salt-factories), each minion with its own root under a fresh
directory and its own supervisord, services on 127.0.100.x (the lab uses
127.0.0.x, so a running lab and the tests never collide), then
``state.orchestrate pgha``. Session-scoped: every test that only reads shares
it; the drill tests move the leader and run last.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import secrets
import shutil
import socket
import tempfile
import time

import pytest
import yaml

from lab import config, pki, processes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADDRESSES = {
    "postgres01": "127.0.100.15",
    "postgres02": "127.0.100.32",
    "postgres03": "127.0.100.6",
    "etcd": "127.0.100.5",
    "haproxy": "127.0.100.3",
    "backup": "127.0.100.8",
    "monitor": "127.0.100.9",
}
# A fourth PostgreSQL node, added and then removed by test_scaling.py. etcd's growth from one member to three
# and back is the benchmark's (bench/membership.py, on the lab, a writer committing meanwhile): here it kept
# make test over 15 minutes. ADDED_ETCD: existing nodes that would join etcd with the added ones.
ADDED = {"postgres04": "127.0.100.40"}
ADDED_ROLES = ["postgresql"]
ADDED_ETCD: tuple = ()
PORTS = (5432, 8008, 2379, 2380, 8080, 8432, 9090, 9093, 9100)
MASTER_ID = "pgha-test-master"


def _listening(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0


@pytest.fixture(scope="session")
def salt_factories_config():
    """Each session's daemons, and the scripts that start them, in a directory of its own."""
    root = tempfile.mkdtemp(prefix="pgha-salt-", dir="/tmp")
    yield {"root_dir": pathlib.Path(root)}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def test_root():
    busy = [f"{a}:{p}" for a in [*ADDRESSES.values(), *ADDED.values()] for p in PORTS if _listening(a, p)]
    if busy:
        pytest.exit(f"the integration tests' addresses are in use ({', '.join(busy)}): another test run is up", 3)
    # Not under /tmp/pytest-of-root (0700): postgres and etcd must reach their dirs.
    root = f"/var/tmp/pgha-tests-{os.getpid()}"
    os.makedirs(root, mode=0o755)
    os.chmod(root, 0o755)
    yield root
    processes.Lab(lab=root, minions=tuple(ADDRESSES) + tuple(ADDED)).down()
    if os.environ.get("PGHA_KEEP_TEST_ROOT"):
        print(f"\nkept the test hosts' files in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster_secrets():
    return {name: secrets.token_urlsafe(16) for name in config.secret_names()}


def write_pillar(test_root: str, cluster_secrets: dict, added: dict | None = None) -> str:
    """
    The cluster's pillar (pgha.lab at the tests' addresses, secrets by role),
    with ``added`` nodes (id -> address: PostgreSQL and etcd nodes beyond the five; ADDED_ETCD
    become etcd members with them)
    and their certificates. Written again to add or remove a node.
    """
    path = os.path.join(test_root, "pillar")
    os.makedirs(path, exist_ok=True)
    addresses = dict(ADDRESSES, **(added or {}))
    nodes = {node_id: dict(node, address=ADDRESSES[node_id]) for node_id, node in config.lab_nodes().items()}
    nodes.update({node_id: {"address": address, "roles": list(ADDED_ROLES)} for node_id, address in (added or {}).items()})
    for node_id in ADDED_ETCD if added else ():
        nodes[node_id] = dict(nodes[node_id], roles=[*nodes[node_id]["roles"], "etcd"])
    overrides = {
        "pgha": {
            "nodes": {node_id: dict(nodes[node_id]) for node_id in addresses},
            "lookup": {"root": os.path.join(test_root, "hosts", "{id}")},
            "haproxy": {"bind_address": ADDRESSES["haproxy"], "stats_bind_address": ADDRESSES["haproxy"]},
            "drill": {"report_dir": os.path.join(test_root, "reports")},
            # monitoring at a lighter pace than the lab's: the drill waits for PatroniLeaderChanged to clear
            "monitor": {"scrape_interval": "5s", "rules": {"leader_change_window": "15s"}},
        }
    }
    # etcd and PostgreSQL over TLS (pillar pgha.lab): the certificates on the hosts, as a PKI would place them.
    hosts = dict(nodes, **{MASTER_ID: {"address": "127.0.0.1", "roles": []}})  # the master: the CA only
    pki.place(os.path.join(test_root, "pki"), lambda node_id: os.path.join(test_root, "hosts", node_id), hosts)
    # secrets by role, as the lab and pillar/top.sls give them
    config.write(os.path.join(path, "top.sls"), config.pillar_top(nodes, MASTER_ID, ["pgha.lab", "tests_local"]))
    config.write(os.path.join(path, "tests_local.sls"), yaml.safe_dump(overrides), mode=0o600)
    config.write(os.path.join(path, "pgha_secrets.yaml"), yaml.safe_dump({"pgha": {"secrets": cluster_secrets}}),
                 mode=0o600)
    return path


@pytest.fixture(scope="session")
def pillar_dir(test_root, cluster_secrets):
    return write_pillar(test_root, cluster_secrets)


@pytest.fixture(scope="session")
def salt_master(salt_factories, pillar_dir):
    # the documented master configuration (lab/config.py formula_config): the file server serves salt/ only
    layout = yaml.safe_load("\n".join(config.formula_config(REPO, [pillar_dir, os.path.join(REPO, "pillar")])))
    overrides = dict(layout, interface="127.0.0.1", log_level_logfile="info", worker_threads=4)
    factory = salt_factories.salt_master_daemon(MASTER_ID, overrides=overrides)
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="session")
def salt_minions(salt_master):
    factories = [salt_master.salt_minion_daemon(node_id) for node_id in ADDRESSES]
    started = []
    try:
        for factory in factories:
            factory.start(start_timeout=120)
            started.append(factory)
        yield {factory.id: factory for factory in factories}
    finally:
        # together: a minion takes seconds to stop
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(started), 1)) as pool:
            list(pool.map(lambda factory: factory.terminate(), started))


@pytest.fixture(scope="session")
def orchestration(salt_master, salt_minions):
    """The whole orchestration, once: (return code, per-state results, seconds)."""
    started = time.monotonic()
    ret = salt_master.salt_run_cli(timeout=900).run("state.orchestrate", "pgha", _timeout=900)
    elapsed = time.monotonic() - started
    data = ret.data or {}
    payload = data.get("data", data) if isinstance(data, dict) else {}
    states = {}
    for value in payload.values():
        if isinstance(value, dict):
            states.update(value)
    return {"returncode": ret.returncode, "states": states, "elapsed": elapsed, "stdout": ret.stdout,
            "stderr": ret.stderr}


def state_result(orchestration: dict, state_id: str) -> dict:
    for key, value in orchestration["states"].items():
        if key.split("_|-")[1] == state_id:
            return value
    raise AssertionError(f"state {state_id} not in the orchestration's return: {sorted(orchestration['states'])}")
