"""
Unit tests of _utils/pgha_retire.py (scaling in): which members leave,
the order of the steps for each (switchover away from a leaving leader to a
node that stays, drain, disable, wait until gone, data kept or purged), and
that nothing is touched when no node that stays is running, and that the
first failed step stops the run.
"""

from __future__ import annotations

import pytest
from pgha_test_helpers import FakeReach, cluster_model, load
from salt.exceptions import CommandExecutionError

retire = load("_utils", "pgha_retire")
STAYING = ["postgres01", "postgres02", "postgres03"]


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(retire, "POLL", 0)


class Cluster:
    """Patroni's member list as the acts change it; records every act."""

    def __init__(self, leader: str = "postgres01", names=("postgres01", "postgres02", "postgres03", "postgres04"),
                 sync: str | None = "postgres02", lingers: bool = False):
        self.leader, self.names, self.sync, self.lingers = leader, list(names), sync, lingers
        self.acted: list[str] = []

    def members(self) -> list[dict]:
        def role(name: str) -> str:
            return "leader" if name == self.leader else "sync_standby" if name == self.sync else "replica"
        return [{"name": n, "role": role(n), "state": "running" if n == self.leader else "streaming",
                 "lag": 0 if n != "postgres03" else 10, "timeline": 1, "host": f"10.131.0.{40 + int(n[-1])}"}
                for n in self.names]

    def switchover(self, reach, target: str | None) -> dict:
        self.acted.append(f"switchover {self.leader}->{target}")
        self.switched_on = reach.cluster
        self.leader, self.sync = target, None
        return {"ok": True, "new_leader": target, "rto_s": 1.0, "lost": 0}

    def drain(self, node: str, name: str) -> dict:
        assert node == "haproxy"
        self.acted.append(f"drain {name}")
        return {}

    def disable(self, name: str, service: str) -> dict:
        assert service == "patroni"
        self.acted.append(f"disable {name}")
        if not self.lingers:
            self.names.remove(name)
        return {}

    def remove(self, name: str, path: str) -> bool:
        self.acted.append(f"purge {name}")
        return True

    def reach(self) -> FakeReach:
        """The cluster as the runner reaches it: pillar's three PostgreSQL nodes; each host's minion answers."""
        return FakeReach(cluster_model(), self.members, {
            "pgha_haproxy.drain": self.drain, "pgha_service.disable": self.disable, "file.remove": self.remove,
            "pgha_config.mapdata": lambda name: {"lookup": {"patroni": {"data_dir": "/var/lib/patroni"}}}})

    def run(self, purge: bool = False, switchover=None) -> dict:
        return retire.run(self.reach(), switchover or self.switchover, timeout=0.05, purge=purge)


def test_nothing_to_retire_touches_nothing():
    cluster = Cluster(names=STAYING)
    result = cluster.run()
    assert result["ok"] is True and result["retired"] == [] and cluster.acted == []
    assert "no member to retire" in result["comment"]


def test_a_replica_is_drained_disabled_and_its_data_kept():
    cluster = Cluster()
    result = cluster.run()
    assert cluster.acted == ["drain postgres04", "disable postgres04"]
    assert result["ok"] is True and result["retired"] == ["postgres04"] and result["kept_data"] == ["postgres04"]
    assert "postgres04 left Patroni's member list" in result["steps"]


def test_a_leaving_leader_hands_over_to_the_synchronous_standby_that_stays_first():
    cluster = Cluster(leader="postgres04", sync="postgres03")
    result = cluster.run()
    assert cluster.acted == ["switchover postgres04->postgres03", "drain postgres04", "disable postgres04"]
    assert result["ok"] is True


def test_without_a_synchronous_standby_the_replica_least_behind_takes_over():
    cluster = Cluster(leader="postgres04", sync=None)
    cluster.run()
    assert cluster.acted[0] == "switchover postgres04->postgres01"


def test_purge_removes_the_data_only_when_asked_and_after_it_left():
    cluster = Cluster()
    result = cluster.run(purge=True)
    assert cluster.acted == ["drain postgres04", "disable postgres04", "purge postgres04"]
    assert result["purged"] == ["postgres04:/var/lib/patroni"] and "kept_data" not in result


def test_members_leave_one_at_a_time():
    cluster = Cluster(names=["postgres01", "postgres02", "postgres03", "postgres04", "postgres05"])
    result = cluster.run()
    assert cluster.acted == ["drain postgres04", "disable postgres04", "drain postgres05", "disable postgres05"]
    assert result["retired"] == ["postgres04", "postgres05"]


def test_no_staying_node_running_touches_nothing():
    cluster = Cluster(leader="postgres04", names=["postgres04"], sync=None)
    result = cluster.run()
    assert result["ok"] is False and cluster.acted == []
    assert result["comment"] == "no PostgreSQL node that stays is running; nothing was touched (departing: postgres04)"


def test_a_failed_switchover_stops_before_anything_else():
    cluster = Cluster(leader="postgres04")
    result = cluster.run(switchover=lambda reach, target: {"ok": False, "problems": ["412 no candidate"]})
    assert result["ok"] is False and "the switchover away from it failed: ['412 no candidate']" in result["comment"]
    assert cluster.acted == []


def test_a_member_that_does_not_leave_fails_the_run_and_keeps_its_data():
    cluster = Cluster(lingers=True)
    result = cluster.run(purge=True)
    assert result["ok"] is False and "still in Patroni's member list" in result["comment"]
    assert "purge postgres04" not in cluster.acted


def test_a_failed_disable_is_reported():
    cluster = Cluster()

    def fail(name, service):
        raise CommandExecutionError("pgha: pgha_service.disable on postgres04 failed: boom")

    cluster.disable = fail
    result = cluster.run()
    assert result["ok"] is False and result["comment"] == (
        "retiring postgres04: pgha: pgha_service.disable on postgres04 failed: boom")


def test_the_switchover_counts_the_leaving_members_at_patronis_address():
    cluster = Cluster(leader="postgres04")
    members = [dict(m, host="10.131.0.40" if m["name"] == "postgres04" else "x") for m in cluster.members()]
    cluster.members = lambda: members
    assert cluster.run()["ok"] is False  # the fake's leader never leaves its list here; the switchover is what counts
    model = cluster.switched_on
    assert model.pg_nodes == ("postgres01", "postgres02", "postgres03", "postgres04")
    assert model.address("postgres04") == "10.131.0.40"
    assert model.address("postgres01") == "10.131.0.15"  # pillar's address kept


def test_drain_and_purge_through_each_hosts_minion():
    cluster = Cluster()
    fake = cluster.reach()
    fake.handlers["pgha_haproxy.drain"] = lambda node, name: (_ for _ in ()).throw(
        CommandExecutionError("pgha_haproxy: no server postgres04"))
    result = retire.run(fake, cluster.switchover, timeout=0.05, purge=True)
    assert "HAProxy on haproxy did not drain postgres04: pgha_haproxy: no server postgres04" in result["steps"]
    assert [call[:3] for call in fake.calls[-3:]] == [("postgres04", "pgha_service.disable", "patroni"),
                                                      ("postgres04", "pgha_config.mapdata"),
                                                      ("postgres04", "file.remove", "/var/lib/patroni")]
    assert result["purged"] == ["postgres04:/var/lib/patroni"]
