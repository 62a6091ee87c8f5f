"""
Unit tests of the pgha state modules _states/patroni.py and
_states/etcd_cluster.py.

The loader's dunders come from ``configure_loader_modules``; ``__salt__``
holds mocks of the execution functions. With ``test=True`` a
state must return result None with the changes it would make and call no
write function; no change means result True in both modes.
"""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from pgha_test_helpers import load
from salt.exceptions import CommandExecutionError

PATRONI_WRITES = ("patroni.switchover", "patroni.failover", "patroni.edit_config", "patroni.restart",
                  "patroni.pause", "patroni.resume")
ETCD_WRITES = ("etcd_cluster.member_add", "etcd_cluster.member_remove", "etcd_cluster.member_update")

MEMBERS = [
    {"name": "postgres01", "role": "leader", "state": "running", "timeline": 3, "lag": 0},
    {"name": "postgres02", "role": "replica", "state": "streaming", "timeline": 3, "lag": 0},
    {"name": "postgres03", "role": "replica", "state": "streaming", "timeline": 3, "lag": 0},
]
HEALTHY = {"leader": "postgres01", "timeline": 3, "members": MEMBERS}
ETCD_MEMBERS = [
    {"id": "8e9e05c52164694d", "name": "etcd", "peer_urls": ["http://127.0.0.5:2380"],
     "client_urls": ["http://127.0.0.5:2379"]},
    {"id": "91bc3c398fb3c146", "name": "etcd02", "peer_urls": ["http://127.0.0.7:2380"],
     "client_urls": ["http://127.0.0.7:2379"]},
]


patroni_states = load("_states", "patroni")
etcd_states = load("_states", "etcd_cluster")


@pytest.fixture
def configure_loader_modules():
    return {
        module: {"__salt__": {}, "__opts__": {"test": False}, "__context__": {}, "__grains__": {"id": "postgres01"}}
        for module in (patroni_states, etcd_states)
    }


def _use(module, salt_functions: dict, test: bool):
    """The state module with these execution functions and test mode (its dunders are this test's own)."""
    module.__salt__.clear()
    module.__salt__.update(salt_functions)
    module.__opts__["test"] = test
    return module


@pytest.fixture
def patroni_salt():
    functions = {
        "patroni.wait_healthy": MagicMock(return_value=HEALTHY),
        "patroni.wait_leader": MagicMock(return_value={"leader": "postgres02", "timeline": 4, "members": MEMBERS}),
        "patroni.leader": MagicMock(return_value="postgres01"),
        "patroni.members": MagicMock(return_value=MEMBERS),
        "patroni.show_config": MagicMock(return_value={"ttl": 20}),
        "patroni.config_changes": MagicMock(return_value={"old": {}, "new": {}}),
    }
    functions.update({name: MagicMock(name=name) for name in PATRONI_WRITES})
    return functions


@pytest.fixture
def etcd_salt():
    functions = {
        "etcd_cluster.health": MagicMock(return_value={"healthy": True, "endpoints": {"etcd": {"leader": "etcd"}}}),
        "etcd_cluster.wait_healthy": MagicMock(return_value={"healthy": True, "endpoints": {"etcd": {"leader": "etcd"}}}),
        "etcd_cluster.members": MagicMock(return_value=ETCD_MEMBERS),
    }
    functions.update({name: MagicMock(name=name) for name in ETCD_WRITES})
    return functions


def patroni_state(functions: dict, test: bool = False):
    return _use(patroni_states, functions, test)


def etcd_state(functions: dict, test: bool = False):
    return _use(etcd_states, functions, test)


def assert_no_writes(functions: dict, writes: tuple) -> None:
    for name in writes:
        functions[name].assert_not_called()


def assert_shape(ret: dict) -> None:
    assert set(ret) == {"name", "changes", "result", "comment"}


# ---------------------------------------------------------------------------
# patroni
# ---------------------------------------------------------------------------


def test_patroni_virtual(patroni_salt):
    assert patroni_state(patroni_salt).__virtual__() == "patroni"
    result = patroni_state({}).__virtual__()
    assert result[0] is False and "patroni execution module" in result[1]


def test_cluster_healthy(patroni_salt):
    ret = patroni_state(patroni_salt).cluster_healthy("gate", members=3, max_lag=0, timeout=90)
    assert_shape(ret)
    assert ret["result"] is True and ret["changes"] == {}
    assert "postgres01 leads on timeline 3, 3 members" in ret["comment"]
    patroni_salt["patroni.wait_healthy"].assert_called_once_with(members=3, max_lag=0, timeout=90)


def test_cluster_healthy_fails(patroni_salt):
    patroni_salt["patroni.wait_healthy"].side_effect = CommandExecutionError("patroni: cluster not healthy after 90 s")
    ret = patroni_state(patroni_salt).cluster_healthy("gate", members=3, timeout=90)
    assert ret["result"] is False and ret["comment"] == "patroni: cluster not healthy after 90 s"


def test_cluster_healthy_test_mode_checks_once(patroni_salt):
    ret = patroni_state(patroni_salt, test=True).cluster_healthy("gate", members=3, timeout=90)
    assert ret["result"] is True and ret["changes"] == {}
    patroni_salt["patroni.wait_healthy"].assert_called_once_with(members=3, max_lag=0, timeout=0)


def test_cluster_healthy_test_mode_unhealthy(patroni_salt):
    patroni_salt["patroni.wait_healthy"].side_effect = CommandExecutionError("postgres03 lags 100 bytes (bound 0)")
    ret = patroni_state(patroni_salt, test=True).cluster_healthy("gate", members=3, timeout=90)
    assert ret["result"] is None and ret["changes"] == {}
    assert "would wait up to 90 s" in ret["comment"] and "postgres03 lags 100 bytes" in ret["comment"]
    assert_no_writes(patroni_salt, PATRONI_WRITES)


def test_leader_already(patroni_salt):
    ret = patroni_state(patroni_salt).leader("postgres01")
    assert ret["result"] is True and ret["changes"] == {}
    assert_no_writes(patroni_salt, PATRONI_WRITES)


def test_leader_test_mode_predicts_a_switchover(patroni_salt):
    ret = patroni_state(patroni_salt, test=True).leader("postgres02")
    assert_shape(ret)
    assert ret["result"] is None
    assert ret["changes"] == {"leader": {"old": "postgres01", "new": "postgres02"}}
    assert_no_writes(patroni_salt, PATRONI_WRITES)
    patroni_salt["patroni.wait_leader"].assert_not_called()


def test_leader_switches_over(patroni_salt):
    ret = patroni_state(patroni_salt).leader("postgres02", timeout=45)
    assert ret["result"] is True
    assert ret["changes"] == {"leader": {"old": "postgres01", "new": "postgres02"}}
    patroni_salt["patroni.switchover"].assert_called_once_with(candidate="postgres02")
    patroni_salt["patroni.wait_leader"].assert_called_once_with(timeout=45, member="postgres02")


def test_leader_switchover_refused(patroni_salt):
    patroni_salt["patroni.switchover"].side_effect = CommandExecutionError(
        "patroni: POST /switchover on postgres01 answered 412: candidate name does not match with sync_standby")
    ret = patroni_state(patroni_salt).leader("postgres03")
    assert ret["result"] is False and ret["changes"] == {}
    assert "does not match with sync_standby" in ret["comment"]


def test_leader_unknown_member(patroni_salt):
    for test in (True, False):
        ret = patroni_state(patroni_salt, test=test).leader("postgres09")
        assert ret["result"] is False and "not a member" in ret["comment"]
    assert_no_writes(patroni_salt, PATRONI_WRITES)


def test_leader_without_a_leader(patroni_salt):
    patroni_salt["patroni.leader"].return_value = None
    ret = patroni_state(patroni_salt).leader("postgres02")
    assert ret["result"] is False and "patroni.failover candidate=postgres02" in ret["comment"]
    assert_no_writes(patroni_salt, PATRONI_WRITES)


def test_leader_cluster_unreachable(patroni_salt):
    patroni_salt["patroni.leader"].side_effect = CommandExecutionError("patroni: no member answered GET /cluster")
    ret = patroni_state(patroni_salt).leader("postgres02")
    assert ret["result"] is False and "no member answered" in ret["comment"]


SETTINGS = {"postgresql": {"parameters": {"max_connections": 200}}}
DIFF = {"old": {"postgresql": {"parameters": {"max_connections": 100}}},
        "new": {"postgresql": {"parameters": {"max_connections": 200}}}}


def test_dynamic_config_in_force(patroni_salt):
    for test in (True, False):
        ret = patroni_state(patroni_salt, test=test).dynamic_config("dcs", SETTINGS)
        assert ret["result"] is True and ret["changes"] == {}
    assert_no_writes(patroni_salt, PATRONI_WRITES)


def test_dynamic_config_test_mode_predicts(patroni_salt):
    patroni_salt["patroni.config_changes"].return_value = DIFF
    ret = patroni_state(patroni_salt, test=True).dynamic_config("dcs", SETTINGS)
    assert_shape(ret)
    assert ret["result"] is None and ret["changes"] == DIFF
    patroni_salt["patroni.config_changes"].assert_called_once_with(SETTINGS)
    assert_no_writes(patroni_salt, PATRONI_WRITES)


def test_dynamic_config_applies(patroni_salt):
    patroni_salt["patroni.config_changes"].return_value = DIFF
    patroni_salt["patroni.edit_config"].return_value = DIFF
    ret = patroni_state(patroni_salt).dynamic_config("dcs", SETTINGS)
    assert ret["result"] is True and ret["changes"] == DIFF
    patroni_salt["patroni.edit_config"].assert_called_once_with(SETTINGS)


def test_dynamic_config_refused(patroni_salt):
    patroni_salt["patroni.config_changes"].return_value = DIFF
    patroni_salt["patroni.edit_config"].side_effect = CommandExecutionError(
        "patroni: PATCH /config on postgres01 answered 503: Service Unavailable.")
    ret = patroni_state(patroni_salt).dynamic_config("dcs", SETTINGS)
    assert ret["result"] is False and "answered 503" in ret["comment"]


def test_dynamic_config_needs_a_map(patroni_salt):
    ret = patroni_state(patroni_salt).dynamic_config("dcs", "max_connections=200")
    assert ret["result"] is False and "non-empty map" in ret["comment"]
    patroni_salt["patroni.config_changes"].assert_not_called()


def test_patroni_mod_watch_rechecks_health(patroni_salt):
    ret = patroni_state(patroni_salt).mod_watch("gate", sfun="cluster_healthy", members=3, max_lag=0, timeout=30,
                                                __reqs__={})
    assert ret["result"] is True
    patroni_salt["patroni.wait_healthy"].assert_called_once_with(members=3, max_lag=0, timeout=30)


def test_patroni_mod_watch_other_function(patroni_salt):
    ret = patroni_state(patroni_salt).mod_watch("postgres02", sfun="leader")
    assert ret["result"] is False and "does not react to watch" in ret["comment"]
    assert_no_writes(patroni_salt, PATRONI_WRITES)


# ---------------------------------------------------------------------------
# etcd_cluster
# ---------------------------------------------------------------------------


def test_etcd_virtual(etcd_salt):
    assert etcd_state(etcd_salt).__virtual__() == "etcd_cluster"
    assert etcd_state({}).__virtual__()[0] is False


def test_healthy(etcd_salt):
    ret = etcd_state(etcd_salt).healthy("dcs", timeout=30)
    assert_shape(ret)
    assert ret["result"] is True and ret["changes"] == {}
    etcd_salt["etcd_cluster.wait_healthy"].assert_called_once_with(timeout=30)


def test_healthy_fails(etcd_salt):
    etcd_salt["etcd_cluster.wait_healthy"].side_effect = CommandExecutionError("etcd_cluster: expected every endpoint")
    ret = etcd_state(etcd_salt).healthy("dcs")
    assert ret["result"] is False and "expected every endpoint" in ret["comment"]


def test_healthy_test_mode(etcd_salt):
    ret = etcd_state(etcd_salt, test=True).healthy("dcs")
    assert ret["result"] is True
    etcd_salt["etcd_cluster.wait_healthy"].assert_not_called()
    etcd_salt["etcd_cluster.health"].return_value = {
        "healthy": False, "endpoints": {"etcd": {"leader": "etcd"}, "etcd02": {"error": "etcd connection failed"}}}
    ret = etcd_state(etcd_salt, test=True).healthy("dcs", timeout=30)
    assert ret["result"] is None and ret["changes"] == {}
    assert "would wait up to 30 s" in ret["comment"] and "etcd02: etcd connection failed" in ret["comment"]


def test_etcd_mod_watch(etcd_salt):
    ret = etcd_state(etcd_salt).mod_watch("dcs", sfun="healthy", timeout=15)
    assert ret["result"] is True
    etcd_salt["etcd_cluster.wait_healthy"].assert_called_once_with(timeout=15)
    assert etcd_state(etcd_salt).mod_watch("etcd03", sfun="member_absent")["result"] is False


def test_member_present_already(etcd_salt):
    for test in (True, False):
        ret = etcd_state(etcd_salt, test=test).member_present("etcd02", "http://127.0.0.7:2380")
        assert ret["result"] is True and ret["changes"] == {}
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_present_added_not_started(etcd_salt):
    etcd_salt["etcd_cluster.members"].return_value = ETCD_MEMBERS + [
        {"id": "1a2b", "name": "", "peer_urls": ["http://127.0.0.8:2380"], "client_urls": []}]
    ret = etcd_state(etcd_salt).member_present("etcd03", "http://127.0.0.8:2380")
    assert ret["result"] is True and "not started yet" in ret["comment"]
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_present_test_mode_predicts(etcd_salt):
    ret = etcd_state(etcd_salt, test=True).member_present("etcd03", "http://127.0.0.8:2380")
    assert_shape(ret)
    assert ret["result"] is None
    assert ret["changes"] == {"member": {"old": None, "new": {"name": "etcd03", "peer_urls": ["http://127.0.0.8:2380"]}}}
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_present_adds(etcd_salt):
    added = {"id": "1a2b", "name": "etcd03", "peer_urls": ["http://127.0.0.8:2380"], "client_urls": [],
             "initial_cluster": "etcd=http://127.0.0.5:2380,etcd02=http://127.0.0.7:2380,etcd03=http://127.0.0.8:2380",
             "initial_cluster_state": "existing"}
    etcd_salt["etcd_cluster.member_add"].return_value = added
    ret = etcd_state(etcd_salt).member_present("etcd03", "http://127.0.0.8:2380")
    assert ret["result"] is True
    assert ret["changes"] == {"member": {"old": None, "new": added}}
    assert "initial-cluster-state existing" in ret["comment"]
    etcd_salt["etcd_cluster.member_add"].assert_called_once_with("etcd03", "http://127.0.0.8:2380")


def test_member_present_conflicts(etcd_salt):
    ret = etcd_state(etcd_salt).member_present("etcd02", "http://127.0.0.9:2380")
    assert ret["result"] is False and "has peer URLs http://127.0.0.7:2380" in ret["comment"]
    ret = etcd_state(etcd_salt).member_present("etcd03", "http://127.0.0.7:2380")
    assert ret["result"] is False and "belongs to member etcd02" in ret["comment"]
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_present_add_refused(etcd_salt):
    etcd_salt["etcd_cluster.member_add"].side_effect = CommandExecutionError("etcdserver: unhealthy cluster")
    ret = etcd_state(etcd_salt).member_present("etcd03", "http://127.0.0.8:2380")
    assert ret["result"] is False and ret["changes"] == {} and "unhealthy cluster" in ret["comment"]


def test_member_present_unreachable(etcd_salt):
    etcd_salt["etcd_cluster.members"].side_effect = CommandExecutionError("etcd_cluster: no endpoint answered")
    ret = etcd_state(etcd_salt, test=True).member_present("etcd03", "http://127.0.0.8:2380")
    assert ret["result"] is False and "no endpoint answered" in ret["comment"]


def test_member_absent_already(etcd_salt):
    for test in (True, False):
        ret = etcd_state(etcd_salt, test=test).member_absent("etcd03")
        assert ret["result"] is True and ret["changes"] == {}
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_absent_test_mode_predicts(etcd_salt):
    ret = etcd_state(etcd_salt, test=True).member_absent("etcd02")
    assert_shape(ret)
    assert ret["result"] is None and ret["changes"] == {"member": {"old": ETCD_MEMBERS[1], "new": None}}
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_absent_removes(etcd_salt):
    ret = etcd_state(etcd_salt).member_absent("etcd02")
    assert ret["result"] is True and ret["changes"] == {"member": {"old": ETCD_MEMBERS[1], "new": None}}
    etcd_salt["etcd_cluster.member_remove"].assert_called_once_with("etcd02")


def test_member_absent_by_id(etcd_salt):
    ret = etcd_state(etcd_salt, test=True).member_absent("91bc3c398fb3c146")
    assert ret["result"] is None


def test_member_absent_refused(etcd_salt):
    etcd_salt["etcd_cluster.member_remove"].side_effect = CommandExecutionError("not enough started members")
    ret = etcd_state(etcd_salt).member_absent("etcd02")
    assert ret["result"] is False and ret["changes"] == {}


def test_member_peer_url_as_recorded(etcd_salt):
    for test in (True, False):
        ret = etcd_state(etcd_salt, test=test).member_peer_url("etcd02", "http://127.0.0.7:2380")
        assert ret["result"] is True and ret["changes"] == {}
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_peer_url_updated_after_tls(etcd_salt):
    ret = etcd_state(etcd_salt, test=True).member_peer_url("etcd02", "https://127.0.0.7:2380")
    assert ret["result"] is None
    assert ret["changes"] == {"peer_urls": {"old": ["http://127.0.0.7:2380"], "new": ["https://127.0.0.7:2380"]}}
    assert_no_writes(etcd_salt, ETCD_WRITES)
    ret = etcd_state(etcd_salt).member_peer_url("etcd02", "https://127.0.0.7:2380")
    assert ret["result"] is True and ret["changes"]["peer_urls"]["new"] == ["https://127.0.0.7:2380"]
    etcd_salt["etcd_cluster.member_update"].assert_called_once_with("etcd02", "https://127.0.0.7:2380")
    etcd_salt["etcd_cluster.member_add"].assert_not_called()


def test_member_peer_url_never_adds_a_member(etcd_salt):
    ret = etcd_state(etcd_salt).member_peer_url("etcd09", "https://127.0.0.9:2380")
    assert ret["result"] is False and "etcd09 is not a member" in ret["comment"]
    assert_no_writes(etcd_salt, ETCD_WRITES)


def test_member_peer_url_update_refused(etcd_salt):
    etcd_salt["etcd_cluster.member_update"].side_effect = CommandExecutionError("etcd_cluster: no endpoint answered")
    ret = etcd_state(etcd_salt).member_peer_url("etcd02", "https://127.0.0.7:2380")
    assert ret["result"] is False and ret["changes"] == {} and "no endpoint answered" in ret["comment"]


def test_auth_configured_in_place(etcd_salt):
    etcd_salt["etcd_cluster.auth_ensure"] = MagicMock(return_value={"enabled": True, "changes": []})
    ret = etcd_state(etcd_salt).auth_configured("postgres")
    assert_shape(ret)
    assert ret["result"] is True and ret["changes"] == {}
    etcd_salt["etcd_cluster.auth_ensure"].assert_called_once_with(test=False)


def test_auth_configured_test_mode_predicts(etcd_salt):
    etcd_salt["etcd_cluster.auth_ensure"] = MagicMock(return_value={"enabled": False, "changes": ["authentication enabled"]})
    ret = etcd_state(etcd_salt, test=True).auth_configured("postgres")
    assert ret["result"] is None and ret["changes"] == {"etcd_auth": ["authentication enabled"]}
    etcd_salt["etcd_cluster.auth_ensure"].assert_called_once_with(test=True)


def test_auth_configured_error(etcd_salt):
    etcd_salt["etcd_cluster.auth_ensure"] = MagicMock(side_effect=CommandExecutionError("etcd refuses the password of its user root"))
    ret = etcd_state(etcd_salt).auth_configured("postgres")
    assert ret["result"] is False and "refuses the password" in ret["comment"]


# ---------------------------------------------------------------------------
# patroni.installed: Patroni in its own virtualenv
# ---------------------------------------------------------------------------


class Pip:
    """cmd.run_all for an install: `python -m venv` makes bin/python, pip records the version it installs."""

    def __init__(self, venv, installs: str = "4.1.5", fail: str | None = None):
        self.venv, self.installs, self.fail, self.calls = venv, installs, fail, []

    def __call__(self, cmd, python_shell=True, umask=None, env=None, ignore_retcode=False, **kwargs):
        self.calls.append({"cmd": list(cmd), "umask": umask, "env": env, "python_shell": python_shell})
        if self.fail and self.fail in cmd[0]:
            return {"retcode": 1, "stdout": "", "stderr": "Collecting patroni\nERROR: No matching distribution found"}
        if cmd[1:3] == ["-m", "venv"]:
            (self.venv / "bin").mkdir(parents=True)
            (self.venv / "bin" / "python").touch()
            (self.venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
        else:
            site = self.venv / "lib" / "python3.11" / "site-packages"
            for old in site.glob("patroni-*.dist-info"):
                old.rmdir()
            (site / f"patroni-{self.installs}.dist-info").mkdir()
        return {"retcode": 0, "stdout": "", "stderr": ""}


def install(tmp_path, pip: Pip, test: bool = False, **kwargs) -> dict:
    state = patroni_state({"cmd.run_all": pip, "patroni.wait_healthy": MagicMock()}, test=test)
    return state.installed(str(tmp_path / "venv"), "4.1.5", "patroni[etcd3,psycopg3]==4.1.5",
                           pip_options=["--no-input"], **kwargs)


def test_installed_makes_the_virtualenv_then_installs(tmp_path):
    pip = Pip(tmp_path / "venv")
    ret = install(tmp_path, pip, index_url="https://u:Idx-pw-1@mirror/simple")
    assert_shape(ret)
    assert ret["result"] is True and ret["changes"] == {"patroni": {"old": None, "new": "4.1.5"}}
    venv = str(tmp_path / "venv")
    assert [c["cmd"] for c in pip.calls] == [
        ["/usr/bin/python3", "-m", "venv", venv],
        [f"{venv}/bin/pip", "install", "--no-input", "patroni[etcd3,psycopg3]==4.1.5"],
    ]
    assert all(c["umask"] == "022" and c["python_shell"] is False for c in pip.calls)
    # the index URL (it may carry credentials) goes through pip's environment only
    assert pip.calls[1]["env"] == {"PIP_INDEX_URL": "https://u:Idx-pw-1@mirror/simple"}
    assert "Idx-pw-1" not in repr(ret)


def test_installed_is_idempotent_and_starts_no_program(tmp_path):
    pip = Pip(tmp_path / "venv")
    install(tmp_path, pip)
    pip.calls.clear()
    ret = install(tmp_path, pip)
    assert (ret["result"], ret["changes"]) == (True, {})
    assert pip.calls == []


def test_installed_upgrades_in_place(tmp_path):
    install(tmp_path, Pip(tmp_path / "venv", installs="4.1.4"), test=False)
    pip = Pip(tmp_path / "venv")
    ret = install(tmp_path, pip)
    assert ret["changes"] == {"patroni": {"old": "4.1.4", "new": "4.1.5"}}
    assert [c["cmd"][1] for c in pip.calls] == ["install"]  # the virtualenv is there already


def test_installed_test_mode_changes_nothing(tmp_path):
    pip = Pip(tmp_path / "venv")
    ret = install(tmp_path, pip, test=True)
    assert ret["result"] is None and ret["changes"] == {"patroni": {"old": None, "new": "4.1.5"}}
    assert pip.calls == []


def test_installed_fails_with_pips_last_words(tmp_path):
    ret = install(tmp_path, Pip(tmp_path / "venv", fail="pip"))
    assert ret["result"] is False
    assert ret["comment"].endswith("failed (1): ERROR: No matching distribution found")
    ret = install(tmp_path, Pip(tmp_path / "venv", installs="4.0.0"))
    assert ret["result"] is False and "records Patroni 4.0.0" in ret["comment"]
