"""
Unit tests of _utils/pgha_cold_start.py (a stopped cluster started again):
a running or a new cluster is left alone; a stopped one has every node that
holds its data and does not run Patroni started before a leader is awaited;
a failed step stops the run and says what was started.
"""

from __future__ import annotations

from pgha_test_helpers import FakeReach, load
from salt.exceptions import CommandExecutionError

cold_start = load("_utils", "pgha_cold_start")

NODES = ["postgres01", "postgres02", "postgres03"]


class Cluster:
    """Patroni's members as the acts change them: a started node runs; the leader is who may lead."""

    def __init__(self, running=(), leader=None, data=NODES, may_lead="postgres03", fail=None):
        self.running = {name: ("leader" if name == leader else "replica") for name in running}
        self.data, self.may_lead, self.fail = set(data), may_lead, fail or {}
        self.log: list[tuple] = []

    def members(self):
        self.log.append(("members",))
        return [{"name": n, "role": r, "state": "running"} for n, r in sorted(self.running.items())]

    def local(self, name):
        self.log.append(("local", name))
        return {"data_dir": f"/var/lib/patroni/{name}", "initialized": name in self.data}

    def start(self, name, sls):
        assert sls == "pgha.postgresql"
        self.log.append(("start", name))
        if "start" in self.fail and self.fail["start"] == name:
            raise CommandExecutionError(f"pgha: state.apply on {name} failed: pgha-patroni-service-running")
        self.running.setdefault(name, "replica")
        if self.may_lead in self.running:
            self.running[self.may_lead] = "leader"

    def wait_leader(self, name, timeout=None):
        self.log.append(("wait_leader", name))
        leaders = [n for n, r in self.running.items() if r == "leader"]
        if not leaders:
            raise CommandExecutionError("patroni: expected a running leader within 120 s; saw: postgres01=replica/running")
        return {"leader": leaders[0]}

    def reach(self):
        """The cluster as the runner reaches it: each host's own minion answers."""
        return FakeReach(members=self.members, handlers={"patroni.local": lambda name: self.local(name),
                                                         "state.apply": self.start,
                                                         "patroni.wait_leader": self.wait_leader})


def test_a_running_cluster_is_left_alone():
    cluster = Cluster(running=NODES, leader="postgres02")
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result == {"ok": True, "started": [], "leader": "postgres02", "comment": "postgres02 leads: nothing to start"}
    assert cluster.log == [("members",)]


def test_a_new_cluster_is_left_to_the_stages_that_follow():
    cluster = Cluster(data=())
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result["ok"] is True and result["started"] == []
    assert "no PostgreSQL node holds data" in result["comment"]
    assert [entry[0] for entry in cluster.log] == ["members", "local", "local", "local"]


def test_a_stopped_cluster_has_every_node_with_data_started_before_a_leader_is_awaited():
    # postgres01, the bootstrap leader, was an asynchronous replica: it cannot lead; postgres03 can
    cluster = Cluster(may_lead="postgres03")
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result["ok"] is True
    assert result["started"] == NODES and result["leader"] == "postgres03"
    assert result["comment"] == "no member led: started postgres01, postgres02, postgres03; postgres03 leads"
    starts = [entry for entry in cluster.log if entry[0] in ("start", "wait_leader")]
    assert starts == [("start", "postgres01"), ("start", "postgres02"), ("start", "postgres03"),
                      ("wait_leader", "postgres01")]


def test_a_member_already_running_without_a_leader_is_not_started_again():
    # the orchestration's earlier try started the bootstrap leader alone, and it waits as a replica
    cluster = Cluster(running=["postgres01"], may_lead="postgres02")
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result["ok"] is True and result["started"] == ["postgres02", "postgres03"]
    assert result["leader"] == "postgres02"
    assert ("local", "postgres01") not in cluster.log and ("start", "postgres01") not in cluster.log


def test_a_node_without_data_is_not_started_here():
    # a rebuilt host: it joins later, as a replica, through the stages that follow
    cluster = Cluster(data=["postgres02", "postgres03"], may_lead="postgres02")
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result["started"] == ["postgres02", "postgres03"] and result["leader"] == "postgres02"


def test_no_stopped_node_with_data_and_no_leader_is_reported_not_forced():
    cluster = Cluster(running=["postgres01"], data=["postgres01"])
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result["ok"] is True and result["started"] == []
    assert result["comment"] == "no member leads; running: postgres01; no stopped node holds data"


def test_a_failed_start_stops_the_run_and_says_what_was_started():
    cluster = Cluster(fail={"start": "postgres02"})
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result["ok"] is False and result["started"] == ["postgres01"]
    assert result["comment"] == ("pgha: state.apply on postgres02 failed: pgha-patroni-service-running "
                                 "(started: postgres01)")
    assert ("start", "postgres03") not in cluster.log and ("wait_leader", "postgres01") not in cluster.log


def test_no_leader_after_the_starts_fails_with_what_was_seen():
    cluster = Cluster(may_lead="postgres04")  # nobody it started may lead
    result = cold_start.run(cluster.reach(), timeout=120)
    assert result["ok"] is False and result["started"] == NODES
    assert result["comment"].startswith("patroni: expected a running leader within 120 s")
