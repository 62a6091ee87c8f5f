"""
Unit tests of _utils/pgha_dcs_recovery.py (a running cluster brought back
onto a new etcd): what is recognised as a lost DCS and what is not, the
order of the recovery (access control, the node that led, the others,
health, the system identifier), and that nothing is touched when it cannot
tell which node was leading.
"""

from __future__ import annotations

import base64

from pgha_test_helpers import FakeReach, cluster_model, load
from salt.exceptions import CommandExecutionError

recovery = load("_utils", "pgha_dcs_recovery")
SYSID = "7715445426127242333"


def patroni(role: str = "replica", state: str = "running", timeline: int = 4) -> dict:
    return {"role": role, "state": state, "timeline": timeline, "database_system_identifier": SYSID}


LED_BY_01 = {"postgres01": patroni("primary"), "postgres02": patroni(), "postgres03": patroni()}


def test_a_running_cluster_on_an_empty_etcd_is_a_lost_dcs_and_its_leader_known():
    seen = recovery.recognise(LED_BY_01, ["pgha-lock"])  # the orchestration's own lock is no Patroni key
    assert seen["lost"] is True and seen["leader"] == "postgres01"
    assert seen["running"] == ["postgres01", "postgres02", "postgres03"]
    assert "postgres01 was leading" in seen["why"]


def test_etcd_holding_the_clusters_keys_is_no_loss():
    for keys in (["initialize"], ["members/postgres02"], ["config", "leader"]):
        assert recovery.recognise(LED_BY_01, keys)["lost"] is False


def test_a_stopped_or_new_cluster_is_no_loss():
    assert recovery.recognise({"postgres01": None, "postgres02": None}, [])["lost"] is False
    stopped = {"postgres01": patroni(state="stopped"), "postgres02": None}
    assert "a stopped or new cluster" in recovery.recognise(stopped, [])["why"]


def test_no_primary_or_two_cannot_tell_who_led():
    demoted = {name: patroni() for name in LED_BY_01}  # failsafe off: the leader demoted itself
    seen = recovery.recognise(demoted, [])
    assert seen["lost"] is True and seen["leader"] is None and "no node reports itself primary" in seen["why"]
    split = dict(LED_BY_01, postgres02=patroni("primary", timeline=5))
    assert "more than one node reports itself primary" in recovery.recognise(split, [])["why"]


class Etcd:
    """etcd's JSON gateway as the recovery reads it: the keys under a prefix."""

    def __init__(self, keys: list[str]):
        self.keys, self.asked = keys, []

    def post(self, path: str, body: dict) -> dict:
        self.asked.append((path, base64.b64decode(body["key"]).decode(), body.get("keys_only")))
        return {"kvs": [{"key": base64.b64encode(f"/db/postgres/{key}".encode()).decode()} for key in self.keys]}


class Cluster:
    """The hosts as the recovery's calls change them: a restarted Patroni leads if it led, else follows."""

    def __init__(self, facts: dict, keys: list[str] | None = None, fail: str | None = None):
        self.facts, self.etcd, self.fail = facts, Etcd(keys or []), fail
        self.log: list[tuple] = []

    def reach(self) -> FakeReach:
        fake = FakeReach(cluster_model(), handlers={
            "state.apply": lambda minion, sls, **kw: self.log.append(("apply", minion, sls)),
            "pgha_service.restart": self.restart,
            "patroni.wait_leader": lambda minion, **kw: self.log.append(("wait_leader", kw["member"])) or {},
            "patroni.wait_healthy": lambda minion, **kw: {"leader": "postgres01", "timeline": 5},
        })
        fake.api = self
        fake.etcd = lambda login: self.etcd if login == "root" else None
        return fake

    def call(self, name: str, path: str, ok=(200,)) -> dict:
        assert path == "/patroni"
        if self.facts.get(name) is None:
            raise CommandExecutionError(f"patroni: REST API https://{name}:8008/patroni unreachable")
        return self.facts[name]

    def restart(self, minion: str, service: str) -> dict:
        assert service == "patroni"
        self.log.append(("restart", minion))
        if self.fail == minion:
            raise CommandExecutionError(f"pgha: pgha_service.restart on {minion} failed: boom")
        return {"running": True}


def test_the_recovery_applies_access_control_then_the_leader_then_the_others():
    cluster = Cluster(dict(LED_BY_01))
    result = recovery.run(cluster.reach(), timeout=60)
    assert result["ok"] is True and result["recovered"] is True and result["leader"] == "postgres01"
    assert cluster.log == [("apply", "etcd", "pgha.etcd.auth"), ("restart", "postgres01"),
                           ("wait_leader", "postgres01"), ("restart", "postgres02"), ("restart", "postgres03")]
    assert result["system_identifier"] == SYSID and result["recover_s"] >= 0
    assert cluster.etcd.asked == [("/v3/kv/range", "/db/postgres/", True)]
    assert result["steps"][-1] == "healthy: postgres01 leads on timeline 5, 2 replica(s) streaming"


def test_a_cluster_whose_etcd_holds_its_keys_is_left_alone():
    cluster = Cluster(dict(LED_BY_01), keys=["config", "initialize", "leader", "members/postgres01"])
    result = recovery.run(cluster.reach(), timeout=60)
    assert result["ok"] is True and result["recovered"] is False and cluster.log == []
    assert result["comment"].startswith("etcd holds the cluster's keys (config, initialize, leader, members/")


def test_who_led_unknown_touches_nothing_and_says_what_to_do():
    cluster = Cluster({name: patroni() for name in LED_BY_01})
    result = recovery.run(cluster.reach(), timeout=60)
    assert result["ok"] is False and cluster.log == []
    assert "cannot tell which node was leading" in result["comment"]
    assert "pgha_service.restart patroni" in result["comment"]


def test_a_node_that_does_not_answer_is_left_to_the_stages_that_follow():
    cluster = Cluster(dict(LED_BY_01, postgres03=None))
    result = recovery.run(cluster.reach(), timeout=60)
    assert result["ok"] is True and ("restart", "postgres03") not in cluster.log


def test_a_failed_step_stops_the_recovery_with_what_was_done():
    cluster = Cluster(dict(LED_BY_01), fail="postgres02")
    result = recovery.run(cluster.reach(), timeout=60)
    assert result["ok"] is False and "pgha_service.restart on postgres02 failed: boom" in result["comment"]
    assert result["steps"][-1] == "patroni restarted on postgres01: it leads in the new etcd"
    assert ("restart", "postgres03") not in cluster.log


def test_a_changed_system_identifier_fails_the_recovery():
    cluster = Cluster(dict(LED_BY_01))
    reach = cluster.reach()
    answers = iter([dict(LED_BY_01["postgres01"]), dict(LED_BY_01["postgres02"]), dict(LED_BY_01["postgres03"]),
                    dict(LED_BY_01["postgres01"], database_system_identifier="1")])
    reach.api = type("API", (), {"call": lambda self, name, path, ok=(200,): next(answers)})()
    result = recovery.run(reach, timeout=60)
    assert result["ok"] is False and f"{SYSID} before, 1 after" in result["comment"]
