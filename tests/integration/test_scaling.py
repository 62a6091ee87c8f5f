"""
Scaling out and in on the running cluster, as a DBA does it: a fourth
PostgreSQL node added to pillar and the orchestration run becomes a
streaming replica on the leader's timeline and an HAProxy server, the
leader untouched, etcd's membership unchanged. Removed from pillar and the
orchestration run again, it is drained and stopped, leaves Patroni's member
list and HAProxy, and its data stays on the host; `pgha.postgresql.clean`
then takes Patroni off the retired node and keeps its data. Runs last (same
cluster as test_cluster.py and test_operations.py). etcd grown from one
member to three and back is the benchmark's (bench/membership.py) and the
unit tests' (tests/unit/test_pgha_etcd_members.py).
"""

from __future__ import annotations

import glob
import os
import time

import psycopg
import pytest
from conftest import ADDED, ADDRESSES, state_result, write_pillar

NEW = "postgres04"
# the drill is the orchestration's own test (test_cluster.py): here only the convergence is timed
NO_DRILL = 'pillar={"pgha": {"drill": {"enabled": false}}}'


def orchestrate(salt_master) -> tuple[dict, float]:
    started = time.monotonic()
    ret = salt_master.salt_run_cli(timeout=900).run("state.orchestrate", "pgha", NO_DRILL, _timeout=900)
    elapsed = time.monotonic() - started
    data = ret.data or {}
    payload = data.get("data", data) if isinstance(data, dict) else {}
    states = {k: v for value in payload.values() if isinstance(value, dict) for k, v in value.items()}
    failed = {k.split("_|-")[1]: v.get("comment") for k, v in states.items() if v.get("result") is not True}
    assert ret.returncode == 0 and not failed, (failed, ret.stdout[-3000:])
    print(f"\norchestration: {elapsed:.1f} s")
    return {"states": states}, elapsed


def members(salt_master) -> list[dict]:
    ret = salt_master.salt_cli(timeout=60).run("patroni.members", minion_tgt="postgres02")
    assert ret.returncode == 0, ret.stdout
    return ret.data


def leader_started(cluster_secrets) -> tuple[str, str]:
    with psycopg.connect(host=ADDRESSES["haproxy"], port=5432, user="postgres", dbname="postgres",
                         password=cluster_secrets["superuser_password"], connect_timeout=5) as conn:
        row = conn.execute("SELECT host(inet_server_addr()), pg_postmaster_start_time()::text").fetchone()
    return row[0], row[1]


def scaling_rows(cluster_secrets, write: bool = False) -> int:
    """The rows this module wrote through HAProxy before scaling (one more first, with ``write``)."""
    with psycopg.connect(host=ADDRESSES["haproxy"], port=5432, user="postgres", dbname="postgres",
                         password=cluster_secrets["superuser_password"], connect_timeout=5) as conn:
        if write:
            conn.execute("CREATE TABLE IF NOT EXISTS pgha_test (id serial PRIMARY KEY, note text)")
            conn.execute("INSERT INTO pgha_test (note) VALUES ('before scaling')")
        return conn.execute("SELECT count(*) FROM pgha_test WHERE note = 'before scaling'").fetchone()[0]


def haproxy_servers(salt_master) -> set[str]:
    ret = salt_master.salt_cli(timeout=60).run("pgha_haproxy.servers", minion_tgt="haproxy")
    assert ret.returncode == 0, ret.stdout
    return {server for listener in ret.data.values() for server in listener}


def etcd_members(salt_master) -> list[dict]:
    ret = salt_master.salt_cli(timeout=60).run("etcd_cluster.members", minion_tgt="etcd")
    assert ret.returncode == 0, ret.stdout
    return ret.data


def check_healthy(salt_master, within: float = 60) -> None:
    """pgha.check passes, within a bounded wait: its lag bound is 0 and a write the moment before lags a replica."""
    deadline = time.monotonic() + within
    while True:
        ret = salt_master.salt_run_cli(timeout=300).run("pgha.check", _timeout=300)
        if (ret.returncode == 0 and ret.data["healthy"] is True) or time.monotonic() >= deadline:
            break
        time.sleep(2)
    assert ret.returncode == 0 and ret.data["healthy"] is True, ret.stdout


@pytest.fixture(scope="module")
def fourth_node(salt_master, orchestration, test_root, cluster_secrets):
    """postgres04 in pillar, its minion started, the orchestration run: (seconds, leader before, after)."""
    assert orchestration["returncode"] == 0
    ret = salt_master.salt_cli(timeout=180).run("patroni.wait_healthy", "members=3", "timeout=120",
                                                minion_tgt="postgres01")
    assert ret.returncode == 0, ret.stdout
    before = leader_started(cluster_secrets)
    assert scaling_rows(cluster_secrets, write=True) == 1
    write_pillar(test_root, cluster_secrets, ADDED)
    factory = salt_master.salt_minion_daemon(NEW)
    factory.start(start_timeout=120)
    try:
        result, elapsed = orchestrate(salt_master)
        yield {"elapsed": elapsed, "before": before, "after": leader_started(cluster_secrets), "result": result}
    finally:
        write_pillar(test_root, cluster_secrets)  # the last test has taken it out; the minion goes at the end
        factory.terminate()


def test_added_node_streams_from_the_leader_without_restarting_it(salt_master, fourth_node):
    found = members(salt_master)
    assert sorted(m["name"] for m in found) == ["postgres01", "postgres02", "postgres03", NEW]
    leader = next(m for m in found if m["role"] == "leader")
    new = next(m for m in found if m["name"] == NEW)
    assert new["state"] == "streaming" and new["streaming"] is True
    assert new["timeline"] == leader["timeline"]
    # the same leader, its PostgreSQL started at the same moment: not restarted
    assert fourth_node["after"] == fourth_node["before"]
    assert NEW in haproxy_servers(salt_master)
    # a PostgreSQL node only: etcd's membership left as it was
    membership = state_result(fourth_node["result"], "pgha-orch-etcd-membership")["changes"].get("return") or {}
    assert not membership.get("joined") and not membership.get("left"), membership
    assert [m["name"] for m in etcd_members(salt_master)] == ["etcd"]
    check_healthy(salt_master)
    assert fourth_node["elapsed"] < 600


def test_removed_node_is_retired_and_its_data_kept(salt_master, fourth_node, test_root, cluster_secrets):
    write_pillar(test_root, cluster_secrets)
    result, elapsed = orchestrate(salt_master)
    # the orchestration run again on a running cluster, safely: the drill left out through pillar, etcd's users,
    # role and passwords already as in pillar, nothing re-bootstrapped (the row written before scaling is there)
    assert not any("failover-drill" in key for key in result["states"])
    auth = state_result(result, "pgha-orch-etcd-auth")
    assert auth["result"] is True and "No changes made to etcd" in auth["comment"], auth
    assert scaling_rows(cluster_secrets) == 1
    retired = state_result(result, "pgha-orch-departed-retired")["changes"]["return"]
    assert retired["retired"] == [NEW] and retired["kept_data"] == [NEW], retired
    assert sorted(m["name"] for m in members(salt_master)) == ["postgres01", "postgres02", "postgres03"]
    assert NEW not in haproxy_servers(salt_master)
    status = salt_master.salt_cli(timeout=60).run("pgha_service.status", "patroni", minion_tgt=NEW)
    assert status.returncode == 0 and status.data["running"] is False, status.stdout
    assert os.path.exists(os.path.join(test_root, "hosts", NEW, "var", "lib", "patroni", "PG_VERSION"))
    assert [m["name"] for m in etcd_members(salt_master)] == ["etcd"]
    check_healthy(salt_master)
    assert elapsed < 600


def test_retired_node_cleaned_its_data_kept(salt_master, fourth_node, test_root):
    """
    pgha.postgresql.clean on the retired postgres04 (no role in pillar any
    more): Patroni's program gone from its supervisord, its configuration
    and virtualenv removed, its data directory kept (pgha:clean:purge_data
    false); a second apply changes nothing.
    """
    host = os.path.join(test_root, "hosts", NEW)
    cli = salt_master.salt_cli(timeout=300)
    ret = cli.run("state.apply", "pgha.postgresql.clean", minion_tgt=NEW, _timeout=300)
    assert ret.returncode == 0, ret.stdout[-3000:]
    failed = {key: state["comment"] for key, state in ret.data.items() if state["result"] is not True}
    assert not failed, failed
    assert not glob.glob(os.path.join(host, "etc", "pgha", "supervisord.d", "patroni.conf*"))
    conf = os.path.join(host, "etc", "pgha", "supervisord.conf")
    program = cli.run("cmd.run_all", f"/usr/bin/supervisorctl -c {conf} status patroni", minion_tgt=NEW)
    assert "no such process" in program.data["stdout"], program.stdout
    assert not os.path.exists(os.path.join(host, "etc", "patroni", "config.yml"))
    assert not os.path.exists(os.path.join(host, "opt", "pgha", "patroni"))
    assert os.path.exists(os.path.join(host, "var", "lib", "patroni", "PG_VERSION"))
    again = cli.run("state.apply", "pgha.postgresql.clean", minion_tgt=NEW, _timeout=300)
    assert again.returncode == 0, again.stdout[-3000:]
    assert [key for key, state in again.data.items() if state["changes"]] == []
