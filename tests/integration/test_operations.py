"""
The operator's toolkit on the running cluster: status, check, validate,
switchover round trip, Patroni's dynamic configuration through a state, and
no secret in any output or log. Runs after test_cluster.py (same cluster).
"""

from __future__ import annotations

import ast
import glob
import json
import os
import pathlib

import psycopg
import pytest
from conftest import ADDRESSES

OUTPUTS: list[str] = []


def run(salt_master, fun: str, *args, timeout: int = 600):
    ret = salt_master.salt_run_cli(timeout=timeout).run(fun, *args, _timeout=timeout)
    OUTPUTS.append(ret.stdout + ret.stderr)
    return ret


def call(salt_master, tgt: str, fun: str, *args, timeout: int = 300):
    ret = salt_master.salt_cli(timeout=timeout).run(fun, *args, minion_tgt=tgt, _timeout=timeout)
    OUTPUTS.append(ret.stdout + ret.stderr)
    return ret


def wait_healthy(salt_master):
    ret = call(salt_master, "postgres01", "patroni.wait_healthy", "members=3", "timeout=120")
    assert ret.returncode == 0, ret.stdout


def test_status_table_and_json(salt_master, orchestration):
    ret = run(salt_master, "pgha.status", "table=True")
    assert ret.returncode == 0, ret.stdout
    assert "Patroni members" in ret.stdout and "HAProxy backends" in ret.stdout
    ret = run(salt_master, "pgha.status", "--out=json")
    data = json.loads(ret.stdout)
    assert sorted(m["name"] for m in data["members"]) == ["postgres01", "postgres02", "postgres03"]
    for member in data["members"]:
        assert {"role", "state", "timeline", "lag"} <= member.keys()
    assert data["etcd"]["healthy"] is True


def test_etcd_members(salt_master, orchestration):
    ret = call(salt_master, "etcd", "etcd_cluster.members")
    assert ret.returncode == 0, ret.stdout
    assert [m["name"] for m in ret.data] == ["etcd"]
    # the lab pillar turns etcd TLS on: clients and peers on https
    assert ret.data[0]["client_urls"] == [f"https://{ADDRESSES['etcd']}:2379"]
    assert ret.data[0]["peer_urls"] == [f"https://{ADDRESSES['etcd']}:2380"]


def test_check_fails_with_a_replica_stopped(salt_master, orchestration):
    wait_healthy(salt_master)
    assert run(salt_master, "pgha.check").returncode == 0
    members = call(salt_master, "postgres01", "patroni.members").data
    replica = next(m["name"] for m in members if m["role"] != "leader")
    assert call(salt_master, replica, "pgha_service.stop", "patroni").returncode == 0
    try:
        ret = run(salt_master, "pgha.check")
        assert ret.returncode != 0
        assert replica in ret.stdout or "expected 3 members" in ret.stdout
    finally:
        assert call(salt_master, replica, "pgha_service.start", "patroni").returncode == 0
    wait_healthy(salt_master)


def test_validate(salt_master, orchestration):
    assert run(salt_master, "pgha.validate").returncode == 0
    ret = run(salt_master, "pgha.validate", 'pillar={"pgha": {"patroni": {"ttl": 10}, "haproxy": {"prot": 1}}}')
    assert ret.returncode != 0
    assert "pgha:patroni:ttl" in ret.stdout
    assert "pgha:haproxy:prot" in ret.stdout


def test_dynamic_config_state_and_test_mode(salt_master, orchestration):
    before = call(salt_master, "postgres01", "patroni.show_config").data
    target = 3 if before.get("loop_wait") != 3 else 2
    settings = json.dumps({"loop_wait": target})
    ret = call(salt_master, "postgres01", "state.single", "patroni.dynamic_config", "name=pgha",
               f"settings={settings}", "test=True")
    state = next(iter(ret.data.values()))
    assert state["result"] is None
    assert call(salt_master, "postgres01", "patroni.show_config").data["loop_wait"] == before["loop_wait"]
    ret = call(salt_master, "postgres01", "state.single", "patroni.dynamic_config", "name=pgha", f"settings={settings}")
    state = next(iter(ret.data.values()))
    assert state["result"] is True and state["changes"]
    assert call(salt_master, "postgres01", "patroni.show_config").data["loop_wait"] == target
    settings = json.dumps({"loop_wait": before["loop_wait"]})
    call(salt_master, "postgres01", "state.single", "patroni.dynamic_config", "name=pgha", f"settings={settings}")
    assert call(salt_master, "postgres01", "patroni.show_config").data["loop_wait"] == before["loop_wait"]


def test_switchover_round_trip(salt_master, orchestration):
    """The leader moves away and comes back; in synchronous mode Patroni only
    hands over to the synchronous standby, so the way back may take a hop more."""
    wait_healthy(salt_master)
    members = call(salt_master, "postgres01", "patroni.members").data
    original = next(m["name"] for m in members if m["role"] == "leader")
    leader, hops = original, 0
    while hops == 0 or (leader != original and hops < 4):
        members = call(salt_master, "postgres01", "patroni.members").data
        sync = [m["name"] for m in members if m["role"] == "sync_standby"]
        args = [f"candidate={original}"] if hops and original in sync else []
        ret = run(salt_master, "pgha.switchover", *args, "--out=json")
        moved = json.loads(ret.stdout)
        assert ret.returncode == 0, moved
        assert moved["ok"] and moved["lost"] == 0 and moved["new_leader"] != moved["old_leader"]
        leader, hops = moved["new_leader"], hops + 1
        wait_healthy(salt_master)
    assert leader == original


def test_switchover_to_a_non_sync_candidate_is_refused_clearly(salt_master, orchestration):
    members = call(salt_master, "postgres01", "patroni.members").data
    others = [m["name"] for m in members if m["role"] == "replica"]
    assert others, members  # three members in synchronous mode: one of them is not the sync standby
    ret = run(salt_master, "pgha.switchover", f"candidate={others[0]}")
    assert ret.returncode != 0
    assert "synchronous standby" in ret.stdout + ret.stderr


def test_pooled_switchover_fails_no_query(salt_master, orchestration):
    """The drill writes through PgBouncer, which is paused for the move and resumed after."""
    wait_healthy(salt_master)
    # alerts=False: the orchestration's drill proves the alerts (test_cluster.py); here the pooler is the point
    ret = run(salt_master, "pgha.failover_drill", "mode=switchover", "path=pooler", "alerts=False", "--out=json")
    drill = json.loads(ret.stdout)
    assert ret.returncode == 0, drill
    assert drill["ok"] and drill["pooler_paused"] is True, drill["problems"]
    assert (drill["failed_writes"], drill["lost"]) == (0, 0)
    assert drill["new_leader"] not in (None, drill["old_leader"])
    # the clients waited instead of failing; generous bound only (the numbers live in the benchmark)
    assert 0 < drill["client_stall_s"] < 60
    assert drill["pooler_paused_s"] >= drill["client_stall_s"] - 1
    # resumed by the pooler's host once HAProxy took the new leader, which it takes once it is writable
    moments = drill["timeline"]
    assert moments["promoted"] - 0.1 <= moments["haproxy_up"] <= moments["first_write_pooler"], moments
    # resumed: the pooler routes writes to the new leader
    ret = run(salt_master, "pgha.write_check", "path=pooler", "--out=json")
    assert ret.returncode == 0, ret.stdout


def test_pooler_refuses_superusers_and_remote_admins(orchestration, cluster_secrets):
    pooler = {"host": ADDRESSES["haproxy"], "port": 6432, "connect_timeout": 5}
    with psycopg.connect(dbname="pgha", user="pgha_probe", password=cluster_secrets["probe_password"], **pooler) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("pgha_probe",)
    # the lookup never returns a superuser's verifier
    with pytest.raises(psycopg.OperationalError, match="no such user"):
        psycopg.connect(dbname="postgres", user="postgres", password=cluster_secrets["superuser_password"], **pooler)
    # the admin console: no remote login, whatever the password
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dbname="pgbouncer", user="pgbouncer", password=cluster_secrets["pooler_password"], **pooler)


def test_crash_drill(salt_master, orchestration):
    wait_healthy(salt_master)
    ret = run(salt_master, "pgha.failover_drill", "mode=crash", "alerts=False", "--out=json")
    drill = json.loads(ret.stdout)
    assert ret.returncode == 0, drill
    assert drill["ok"] and drill["lost"] == 0 and drill["timeline_after"] > drill["timeline_before"]
    assert drill["rejoin_s"] is not None


def test_a_partition_on_hosts_sharing_one_network_stack_is_refused_and_nothing_is_cut(salt_master, orchestration):
    # the test cluster is on loopback (127.0.100.x): no cut can separate two of its hosts; the namespaced lab's can
    ret = run(salt_master, "pgha.failover_drill", "mode=partition-leader", "alerts=False", "--out=json")
    assert ret.returncode != 0
    drill = json.loads(ret.stdout)
    assert drill["ok"] is False and "reached through this host's loopback" in drill["comment"], drill
    assert drill["restored"] == [] and "acked" not in drill  # refused before the writer or any cut
    assert all(cuts == [] for cuts in call(salt_master, "*", "pgha_net.cuts").data.values())


def test_no_secret_in_outputs_or_logs(salt_master, salt_minions, orchestration, cluster_secrets, test_root):
    texts = list(OUTPUTS) + [orchestration["stdout"], orchestration["stderr"]]
    logs = [salt_master.config["log_file"], *[m.config["log_file"] for m in salt_minions.values()]]
    logs += glob.glob(os.path.join(test_root, "hosts", "*", "var", "log", "pgha", "*.log"))
    for path in logs:
        if os.path.exists(path):
            with open(path, errors="replace") as handle:
                texts.append(handle.read())
    assert len(texts) > 10
    for name, secret in cluster_secrets.items():
        leaks = [i for i, text in enumerate(texts) if secret in text]
        assert not leaks, f"{name} appears in {len(leaks)} outputs/logs"


def test_rolling_reload_and_restart(salt_master, orchestration):
    wait_healthy(salt_master)
    ret = run(salt_master, "pgha.reload", "--out=json")
    reloaded = json.loads(ret.stdout)
    assert ret.returncode == 0, reloaded
    assert reloaded["ok"] and len(reloaded["done"]) == 3
    leader = next(m["name"] for m in call(salt_master, "postgres01", "patroni.members").data if m["role"] == "leader")
    assert reloaded["done"][-1] == leader  # replicas first, the leader last
    wait_healthy(salt_master)
    ret = run(salt_master, "pgha.restart", "pending_only=False", "--out=json")
    restarted = json.loads(ret.stdout)
    assert ret.returncode == 0, restarted
    assert restarted["ok"] and len(restarted["done"]) == 3
    assert any("switchover" in step for step in restarted["steps"])
    wait_healthy(salt_master)


def _postgres_db(cluster_secrets) -> dict:
    """Every table of the users' database `postgres` with its row count (as the superuser, through HAProxy)."""
    with psycopg.connect(host=ADDRESSES["haproxy"], port=5432, user="postgres", dbname="postgres",
                         password=cluster_secrets["superuser_password"], connect_timeout=5, autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}


def test_switchover_and_drill_leave_the_users_database_as_they_found_it(salt_master, orchestration, cluster_secrets):
    """A switchover runs the drill's engine and its writer (the other drills' own tests ran before this one)."""
    wait_healthy(salt_master)
    before = _postgres_db(cluster_secrets)
    ret = run(salt_master, "pgha.switchover", "--out=json")
    assert ret.returncode == 0, ret.stdout
    assert _postgres_db(cluster_secrets) == before


def test_the_probe_role_writes_only_into_the_formulas_database(orchestration, cluster_secrets):
    probe = {"host": ADDRESSES["haproxy"], "port": 5432, "user": "pgha_probe",
             "password": cluster_secrets["probe_password"], "connect_timeout": 5, "autocommit": True}
    with psycopg.connect(dbname="pgha", **probe) as conn:
        assert conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                            "WHERE rolname = current_user").fetchone() == (False, False, False)
        assert conn.execute("SELECT count(*) FROM pgha_check").fetchone()[0] == 1  # the write gate's one row
    with psycopg.connect(dbname="postgres", **probe) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE pgha_probe_was_here (id int)")


def test_bad_arguments_answer_one_line_and_touch_nothing(salt_master, orchestration):
    wait_healthy(salt_master)
    leader = next(m["name"] for m in call(salt_master, "postgres01", "patroni.members").data if m["role"] == "leader")
    for args, expected in (
        (("pgha.failover_drill", "mode=stop", "timeout=-5"), "timeout must be between 10 and 3600 seconds (got -5)"),
        (("pgha.restart", "timeout=abc"), "timeout must be a number of seconds (got 'abc')"),
        (("pgha.failover_drill", "mode=nuke"), "mode must be one of stop, crash, switchover"),
    ):
        ret = run(salt_master, *args)  # --out=json here; without it, the one line and its exit code
        assert ret.returncode != 0, ret.stdout
        function = args[0]
        assert set(ret.data) == {function, "retcode"}, ret.data
        assert expected in ret.data[function] and "\n" not in ret.data[function]
        assert "Traceback" not in ret.stdout + ret.stderr
    assert run(salt_master, "pgha.check").returncode == 0
    assert next(m["name"] for m in call(salt_master, "postgres01", "patroni.members").data
                if m["role"] == "leader") == leader


def test_helpers_are_not_commands(salt_master, orchestration):
    """Every private function the runner has today (read from its source) is missing from its commands."""
    source = (pathlib.Path(__file__).resolve().parents[2] / "_runners" / "pgha.py").read_text()
    helpers = [node.name for node in ast.parse(source).body
               if isinstance(node, ast.FunctionDef) and node.name.startswith("_") and not node.name.startswith("__")]
    assert {"_driller", "_cluster", "_reach", "_take"} <= set(helpers)
    ret = run(salt_master, "doc.runner", "--out=json")
    commands = [name for name in json.loads(ret.stdout) if name.startswith("pgha.")]
    assert "pgha.switchover" in commands and "pgha.lock" in commands
    assert [name for name in commands if name.split(".", 1)[1].startswith("_")] == []
    assert not {f"pgha.{helper}" for helper in helpers} & set(commands)


def test_stopped_cluster_comes_back(salt_master, orchestration, cluster_secrets):
    """
    Every Patroni stopped, the bootstrap leader (postgres01) first, as an asynchronous replica: after a full
    stop Patroni lets only the last leader or its synchronous standby lead, so starting postgres01 alone (a new
    cluster's order) would wait for ever. ``pgha.cold_start`` (the orchestration's stage before the bootstrap
    leader's) starts every node holding data and waits for a leader.
    """
    wait_healthy(salt_master)
    members = call(salt_master, "postgres01", "patroni.members").data
    if next(m["name"] for m in members if m["role"] == "leader") == "postgres01":
        ret = run(salt_master, "pgha.switchover", "--out=json")
        assert ret.returncode == 0, ret.stdout
        wait_healthy(salt_master)
        members = call(salt_master, "postgres01", "patroni.members").data
    leader = next(m["name"] for m in members if m["role"] == "leader")
    other = next(m["name"] for m in members if m["name"] not in ("postgres01", leader))
    with psycopg.connect(host=ADDRESSES["haproxy"], port=5432, user="postgres", dbname="postgres",
                         password=cluster_secrets["superuser_password"], connect_timeout=5) as conn:
        conn.execute("CREATE TABLE pgha_before_stop AS SELECT generate_series(1, 100) AS n")
    try:
        for name in ("postgres01", other, leader):  # replicas first, the leader last: a clean full stop
            assert call(salt_master, name, "pgha_service.stop", "patroni").returncode == 0
        ret = run(salt_master, "pgha.cold_start")
        assert ret.returncode == 0, ret.stdout
        assert ret.data["ok"] is True and sorted(ret.data["started"]) == ["postgres01", "postgres02", "postgres03"]
        # the last leader, or the standby it still named synchronous: never postgres01
        assert ret.data["leader"] in (leader, other), ret.data
        # and again, on the running cluster: nothing to start
        again = run(salt_master, "pgha.cold_start")
        assert again.returncode == 0 and again.data["started"] == [], again.stdout
    finally:
        for name in ("postgres01", "postgres02", "postgres03"):
            call(salt_master, name, "pgha_service.start", "patroni")
    wait_healthy(salt_master)
    assert run(salt_master, "pgha.check").returncode == 0
    with psycopg.connect(host=ADDRESSES["haproxy"], port=5432, user="postgres", dbname="postgres",
                         password=cluster_secrets["superuser_password"], connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*), sum(n) FROM pgha_before_stop").fetchone() == (100, 5050)
        conn.execute("DROP TABLE pgha_before_stop")
