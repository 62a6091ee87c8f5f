"""
Unit tests of _utils/pgha_retire.py (scaling in): which members leave,
the order of the steps for each (switchover away from a leaving leader to a
node that stays, drain, disable, wait until gone, data kept or purged), and
that nothing is touched when no node that stays is running, and that the
first failed step stops the run.
"""

from __future__ import annotations

import pytest
from pgha_test_helpers import load
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
                 "lag": 0 if n != "postgres03" else 10, "timeline": 1} for n in self.names]

    def switchover(self, name: str, target: str | None) -> dict:
        self.acted.append(f"switchover {name}->{target}")
        self.leader, self.sync = target, None
        return {"ok": True, "new_leader": target, "rto_s": 1.0, "lost": 0}

    def drain(self, name: str) -> list[str]:
        self.acted.append(f"drain {name}")
        return [f"HAProxy on haproxy drains {name}"]

    def disable(self, name: str) -> None:
        self.acted.append(f"disable {name}")
        if not self.lingers:
            self.names.remove(name)

    def purge(self, name: str) -> str:
        self.acted.append(f"purge {name}")
        return f"{name}:/var/lib/patroni"

    def acts(self, staying=STAYING, timeout: float = 0.05):
        return retire.acts(members=self.members, staying=staying, switchover=self.switchover, drain=self.drain,
                           disable=self.disable, purge=self.purge, timeout=timeout)


def test_nothing_to_retire_touches_nothing():
    cluster = Cluster(names=STAYING)
    result = retire.run(cluster.acts())
    assert result["ok"] is True and result["retired"] == [] and cluster.acted == []
    assert "no member to retire" in result["comment"]


def test_a_replica_is_drained_disabled_and_its_data_kept():
    cluster = Cluster()
    result = retire.run(cluster.acts())
    assert cluster.acted == ["drain postgres04", "disable postgres04"]
    assert result["ok"] is True and result["retired"] == ["postgres04"] and result["kept_data"] == ["postgres04"]
    assert "postgres04 left Patroni's member list" in result["steps"]


def test_a_leaving_leader_hands_over_to_the_synchronous_standby_that_stays_first():
    cluster = Cluster(leader="postgres04", sync="postgres03")
    result = retire.run(cluster.acts())
    assert cluster.acted == ["switchover postgres04->postgres03", "drain postgres04", "disable postgres04"]
    assert result["ok"] is True


def test_without_a_synchronous_standby_the_replica_least_behind_takes_over():
    cluster = Cluster(leader="postgres04", sync=None)
    retire.run(cluster.acts())
    assert cluster.acted[0] == "switchover postgres04->postgres01"


def test_purge_removes_the_data_only_when_asked_and_after_it_left():
    cluster = Cluster()
    result = retire.run(cluster.acts(), purge=True)
    assert cluster.acted == ["drain postgres04", "disable postgres04", "purge postgres04"]
    assert result["purged"] == ["postgres04:/var/lib/patroni"] and "kept_data" not in result


def test_members_leave_one_at_a_time():
    cluster = Cluster(names=["postgres01", "postgres02", "postgres03", "postgres04", "postgres05"])
    result = retire.run(cluster.acts())
    assert cluster.acted == ["drain postgres04", "disable postgres04", "drain postgres05", "disable postgres05"]
    assert result["retired"] == ["postgres04", "postgres05"]


def test_no_staying_node_running_touches_nothing():
    cluster = Cluster(leader="postgres04", names=["postgres04"], sync=None)
    result = retire.run(cluster.acts())
    assert result["ok"] is False and cluster.acted == []
    assert result["comment"] == "no PostgreSQL node that stays is running; nothing was touched (departing: postgres04)"


def test_a_failed_switchover_stops_before_anything_else():
    cluster = Cluster(leader="postgres04")
    cluster.switchover = lambda name, target: {"ok": False, "problems": ["412 no candidate"]}
    result = retire.run(cluster.acts())
    assert result["ok"] is False and "the switchover away from it failed: ['412 no candidate']" in result["comment"]
    assert cluster.acted == []


def test_a_member_that_does_not_leave_fails_the_run_and_keeps_its_data():
    cluster = Cluster(lingers=True)
    result = retire.run(cluster.acts(), purge=True)
    assert result["ok"] is False and "still in Patroni's member list" in result["comment"]
    assert "purge postgres04" not in cluster.acted


def test_a_failed_disable_is_reported():
    cluster = Cluster()

    def fail(name):
        raise CommandExecutionError("pgha: pgha_service.disable on postgres04 failed: boom")

    cluster.disable = fail
    result = retire.run(cluster.acts())
    assert result["ok"] is False and result["comment"] == (
        "retiring postgres04: pgha: pgha_service.disable on postgres04 failed: boom")


TOPO = {"pg_nodes": STAYING, "haproxy_nodes": ["haproxy"],
        "nodes": {n: {"address": f"127.0.0.{i}", "roles": ["postgresql"]} for i, n in enumerate(STAYING, 1)}}


def test_the_switchover_model_counts_the_leaving_members_with_patronis_address():
    members = [dict(m, host="127.0.0.40" if m["name"] == "postgres04" else "x")
               for m in Cluster(leader="postgres04").members()]
    model = retire.scoped(TOPO, members)
    assert model["pg_nodes"] == ["postgres01", "postgres02", "postgres03", "postgres04"]
    assert model["nodes"]["postgres04"] == {"address": "127.0.0.40", "roles": ["postgresql"]}
    assert model["nodes"]["postgres01"] == TOPO["nodes"]["postgres01"]  # pillar's address kept
    assert TOPO["pg_nodes"] == STAYING  # the pillar's model itself untouched


def test_acts_through_the_minions():
    calls: list = []

    def call(tgt, fun, *args, wait=60):
        calls.append((tgt, fun, *args))
        if fun == "pgha_config.mapdata":
            return {"lookup": {"patroni": {"data_dir": "/var/lib/patroni"}}}
        if fun == "pgha_haproxy.drain" and args == ("postgres05",):
            raise CommandExecutionError("pgha_haproxy: no server postgres05")
        return {}

    cluster = Cluster(leader="postgres04")
    members = [dict(m, host="127.0.0.40") for m in cluster.members()]
    model, options, drilled = retire.scoped(TOPO, members), {}, []
    acts = retire.acts_through(call, lambda: members, TOPO, model, options,
                               lambda: drilled.append(dict(options)) or {"ok": True}, timeout=30)
    assert acts.switchover("postgres04", "postgres02") == {"ok": True} and drilled == [{"candidate": "postgres02"}]
    assert acts.drain("postgres04") == ["HAProxy on haproxy drains postgres04"]
    assert acts.drain("postgres05") == ["HAProxy on haproxy did not drain postgres05: pgha_haproxy: no server postgres05"]
    acts.disable("postgres04")
    assert acts.purge("postgres04") == "postgres04:/var/lib/patroni"
    assert calls[-3:] == [("postgres04", "pgha_service.disable", "patroni"), ("postgres04", "pgha_config.mapdata"),
                          ("postgres04", "file.remove", "/var/lib/patroni")]
