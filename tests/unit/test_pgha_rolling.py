"""
Unit tests of _utils/pgha_rolling.py: the order of a rolling operation
(replicas first, the leader last after a switchover), its health gate after
each step, and that it stops at the first failure and touches nothing on an
unhealthy cluster.
"""

from __future__ import annotations

import itertools

import pytest
from pgha_test_helpers import FakeReach, cluster_model, load
from salt.exceptions import CommandExecutionError

rolling = load("_utils", "pgha_rolling")
# the lag bound of a healthy member between steps is patroni:maximum_lag_on_failover
MODEL = cluster_model({"patroni": {"maximum_lag_on_failover": 0}})


def members(leader: str = "postgres02", lag03: int = 0) -> list[dict]:
    return [{"name": name, "role": "leader" if name == leader else "replica", "state": "running", "timeline": 2,
             "lag": lag03 if name == "postgres03" else 0, "streaming": name != leader}
            for name in ("postgres01", "postgres02", "postgres03")]


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(rolling, "GATE_POLL", 0)


def reach(acted: list, seen=None, fail=None) -> FakeReach:
    """The members' views in turn (the last one for ever after); each restart or reload recorded in ``acted``."""
    views = itertools.chain(seen, itertools.repeat(seen[-1])) if seen else None

    def act(minion: str, *args, **kwargs):
        if fail:
            raise fail
        acted.append(minion)

    return FakeReach(MODEL, (lambda: next(views)) if views else members,
                     {"patroni.restart": act, "patroni.reload": act, "pgha_service.restart": act})


def moved(acted: list):
    return lambda: acted.append("switchover") or {"ok": True, "old_leader": "postgres02", "new_leader": "postgres01"}


def test_restart_replicas_first_then_the_leader_after_a_switchover():
    acted: list = []
    fake = reach(acted)
    result = rolling.run(fake, "restart", moved(acted), timeout=0.05, pending_only=True)
    assert acted == ["postgres01", "postgres03", "switchover", "postgres02"]
    assert fake.calls[0] == ("postgres01", "patroni.restart", ("pending_only", True), ("timeout", 0))
    assert result["ok"] is True and result["done"] == ["postgres01", "postgres03", "postgres02"]
    assert result["steps"][2] == {"switchover": {"old_leader": "postgres02", "new_leader": "postgres01",
                                                 "rto_s": None, "lost": None, "ok": True}}


def test_reload_needs_no_switchover_and_only_limits():
    acted: list = []
    fake = reach(acted)
    assert rolling.run(fake, "reload", moved(acted), timeout=0.05)["ok"] is True
    assert acted == ["postgres01", "postgres03", "postgres02"]
    assert {call[1] for call in fake.calls} == {"patroni.reload"}
    acted.clear()
    assert rolling.run(reach(acted), "restart", moved(acted), timeout=0.05, only={"postgres03"})["done"] == [
        "postgres03"]
    assert acted == ["postgres03"]


def test_a_new_patroni_restarts_the_service():
    acted: list = []
    fake = reach(acted)
    assert rolling.run(fake, "restart", moved(acted), timeout=0.05, what="patroni")["ok"] is True
    assert [call[:3] for call in fake.calls] == [(name, "pgha_service.restart", "patroni")
                                                 for name in ("postgres01", "postgres03", "postgres02")]


def test_an_unhealthy_cluster_is_not_touched():
    acted: list = []
    result = rolling.run(reach(acted, seen=[members(lag03=4096)]), "restart", moved(acted), timeout=0.05)
    assert result["ok"] is False and acted == []
    assert "nothing was touched" in result["comment"] and "postgres03 lags 4096 bytes" in result["comment"]


def test_a_failed_gate_stops_the_run():
    acted: list = []
    unhealthy = members(lag03=4096)
    result = rolling.run(reach(acted, seen=[members(), unhealthy]), "restart", moved(acted), timeout=0.05)
    assert acted == ["postgres01"]
    assert result["ok"] is False and result["done"] == []
    assert result["comment"].startswith("after the restart of postgres01: ")


def test_a_failed_step_or_switchover_stops_the_run():
    boom = CommandExecutionError("pgha: minion postgres01 did not answer patroni.restart within 180 s")
    result = rolling.run(reach([], fail=boom), "restart", moved([]), timeout=0.05)
    assert result["ok"] is False and "the restart of postgres01 failed: pgha: minion" in result["comment"]
    acted: list = []
    result = rolling.run(reach(acted), "restart", lambda: {"ok": False, "problems": ["no new leader took over"]},
                         timeout=0.05)
    assert acted == ["postgres01", "postgres03"] and result["done"] == ["postgres01", "postgres03"]
    assert "switchover before the restart of postgres02 failed: ['no new leader took over']" in result["comment"]
