"""
Unit tests of _utils/pgha_etcd_members.py (etcd's members follow pillar):
who joins and who leaves, the order of the steps (joins first, one member at
a time: add, start with the cluster as it is, health; remove, stop and move
the data aside, health), refusals before any change (a host with old etcd
data, a cluster that does not answer while a node would join), and that the
first failed step stops the run.
"""

from __future__ import annotations

import types

import pytest
from pgha_test_helpers import FakeReach, load
from salt.exceptions import CommandExecutionError

members_util = load("_utils", "pgha_etcd_members")


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(members_util, "POLL", 0)

URL = {"etcd": "https://127.0.0.5:2380", "postgres01": "https://127.0.0.15:2380",
       "postgres02": "https://127.0.0.32:2380", "postgres04": "https://127.0.0.40:2380"}


def wanted(*names: str) -> dict[str, str]:
    return {name: URL[name] for name in names}


class Etcd:
    """An etcd cluster's member list as the acts change it; records every act."""

    def __init__(self, started=("etcd",), added=(), bootstrapped=None, down=False, fail=None):
        self.members_ = [{"id": f"{i + 1:x}", "name": n, "peer_urls": [URL[n]], "client_urls": []}
                         for i, n in enumerate(started)]
        self.members_ += [{"id": f"a{i}", "name": "", "peer_urls": [URL[n]], "client_urls": []}
                          for i, n in enumerate(added)]
        self.bootstrapped = set(started if bootstrapped is None else bootstrapped)
        self.down, self.fail = down, fail or {}
        self.acted: list[str] = []

    def _maybe_fail(self, act: str) -> None:
        if act not in self.fail:
            return
        failure = self.fail[act]
        if isinstance(failure, list):  # fails while the list lasts
            if failure:
                raise CommandExecutionError(failure.pop(0))
            return
        raise CommandExecutionError(failure)

    def members(self) -> list[dict]:
        if self.down:
            raise CommandExecutionError("pgha: etcd_cluster.members on etcd failed: no endpoint answered")
        return [dict(m) for m in self.members_]

    def local(self, name: str) -> dict:
        return {"data_dir": f"/var/lib/etcd/{name}", "bootstrapped": name in self.bootstrapped}

    def add(self, via: str, name: str, peer_url: str) -> dict:
        self.acted.append(f"add {name} via {via}")
        self._maybe_fail("add")
        self.members_.append({"id": "ff", "name": "", "peer_urls": [peer_url], "client_urls": []})
        return {"id": "ff"}

    def start(self, name: str, initial_cluster: str) -> None:
        self.acted.append(f"start {name} with {initial_cluster}")
        self._maybe_fail("start")
        for member in self.members_:
            if URL[name] in member["peer_urls"]:
                member["name"] = name
        self.bootstrapped.add(name)

    def healthy(self, via: str, names: list[str]) -> None:
        self.acted.append(f"healthy {','.join(names)} via {via}")
        self._maybe_fail("healthy")

    def remove(self, via: str, name: str) -> None:
        self.acted.append(f"remove {name} via {via}")
        self._maybe_fail("remove")
        self.members_ = [m for m in self.members_ if name not in (m["name"], m["id"])]

    def retire(self, name: str, purge: bool) -> dict:
        self.acted.append(f"retire {name}" + (" purge" if purge else ""))
        self._maybe_fail("retire")
        return {"data": "removed" if purge else f"/var/lib/etcd/{name}.removed-20261128T120000"}

    def reach(self, wanted: dict[str, str]) -> FakeReach:
        """The cluster as the runner reaches it: pillar's etcd nodes (``wanted``); each host's minion answers."""

        def single(via, state, name, **kwargs):
            if state == "etcd_cluster.member_present":
                return self.add(via, name, kwargs["peer_url"])
            assert state == "etcd_cluster.member_absent"
            return self.remove(via, name)

        def apply(name, sls, pillar=None):
            assert sls == "pgha.etcd"
            joining = (pillar or {}).get("pgha", {}).get("etcd", {})
            assert joining.get("initial_cluster_state", "existing") == "existing"
            return self.start(name, joining.get("initial_cluster"))

        model = types.SimpleNamespace(etcd=types.SimpleNamespace(peer_urls=dict(wanted)))
        return FakeReach(model, handlers={
            "etcd_cluster.members": lambda via: self.members(), "etcd_cluster.local": lambda name: self.local(name),
            "state.single": single, "state.apply": apply,
            "etcd_cluster.wait_healthy": lambda via, timeout, names: self.healthy(via, names.split(",")),
            "etcd_cluster.retire_local": lambda name, purge: self.retire(name, purge)})

    def run(self, wanted: dict[str, str], purge: bool = False, timeout: float = 5) -> dict:
        return members_util.run(self.reach(wanted), timeout, purge=purge)


def test_nothing_to_do_when_members_are_pillars_etcd_nodes():
    etcd = Etcd(started=("etcd", "postgres01", "postgres02"))
    result = etcd.run(wanted("etcd", "postgres01", "postgres02"))
    assert result["ok"] and result["joined"] == [] and result["left"] == []
    assert etcd.acted == []
    assert "etcd, postgres01, postgres02" in result["comment"]


def test_two_nodes_join_one_at_a_time_each_with_the_cluster_as_it_is():
    etcd = Etcd()
    result = etcd.run(wanted("etcd", "postgres01", "postgres02"))
    assert result["ok"], result
    assert result["joined"] == ["postgres01", "postgres02"]
    assert etcd.acted == [
        "add postgres01 via etcd",
        "start postgres01 with etcd=https://127.0.0.5:2380,postgres01=https://127.0.0.15:2380",
        "healthy etcd,postgres01 via etcd",
        "add postgres02 via etcd",
        ("start postgres02 with etcd=https://127.0.0.5:2380,postgres01=https://127.0.0.15:2380,"
         "postgres02=https://127.0.0.32:2380"),
        "healthy etcd,postgres01,postgres02 via etcd",
    ]


def test_a_member_added_but_never_started_is_started_not_added_again():
    etcd = Etcd(added=("postgres01",))
    result = etcd.run(wanted("etcd", "postgres01"))
    assert result["ok"] and result["joined"] == ["postgres01"]
    assert etcd.acted[0] == "start postgres01 with etcd=https://127.0.0.5:2380,postgres01=https://127.0.0.15:2380"


def test_members_pillar_dropped_leave_with_their_data_kept():
    etcd = Etcd(started=("etcd", "postgres01", "postgres02"))
    result = etcd.run(wanted("etcd"))
    assert result["ok"], result
    assert result["left"] == ["postgres01", "postgres02"]
    assert etcd.acted == ["remove postgres01 via etcd", "retire postgres01", "healthy etcd via etcd",
                          "remove postgres02 via etcd", "retire postgres02", "healthy etcd via etcd"]
    assert result["kept_data"] == ["postgres01:/var/lib/etcd/postgres01.removed-20261128T120000",
                                   "postgres02:/var/lib/etcd/postgres02.removed-20261128T120000"]


def test_purge_deletes_the_data_of_members_that_leave():
    etcd = Etcd(started=("etcd", "postgres04"))
    result = etcd.run(wanted("etcd"), purge=True)
    assert result["purged"] == ["postgres04:removed"] and "kept_data" not in result
    assert "retire postgres04 purge" in etcd.acted


def test_a_replacement_joins_before_the_old_member_leaves():
    etcd = Etcd(started=("etcd", "postgres01"))
    result = etcd.run(wanted("etcd", "postgres02"))
    assert result["ok"] and result["joined"] == ["postgres02"] and result["left"] == ["postgres01"]
    assert [act.split()[0] for act in etcd.acted] == ["add", "start", "healthy", "remove", "retire", "healthy"]
    # the new member starts into the cluster as it is then: with postgres01 still in it
    assert "postgres01=https://127.0.0.15:2380" in etcd.acted[1]


def test_a_host_with_old_etcd_data_is_refused_before_anything_changes():
    etcd = Etcd(bootstrapped=("etcd", "postgres01"))
    result = etcd.run(wanted("etcd", "postgres01"))
    assert not result["ok"]
    assert "postgres01 cannot join: /var/lib/etcd/postgres01 holds etcd data" in result["comment"]
    assert "etcd_cluster.retire_local" in result["comment"]
    assert etcd.acted == []


def test_a_new_cluster_is_left_to_the_etcd_stage():
    etcd = Etcd(bootstrapped=(), down=True)
    result = etcd.run(wanted("etcd", "postgres01", "postgres02"))
    assert result["ok"] and etcd.acted == []
    assert result["comment"].startswith("a new etcd cluster")


def test_a_cluster_that_does_not_answer_is_started_before_anything_joins():
    etcd = Etcd(bootstrapped=("etcd",), down=True)
    original_start = etcd.start

    def start(name, initial_cluster):
        original_start(name, initial_cluster)
        etcd.down = False  # etcd's own member answers once started

    etcd.start = start
    result = etcd.run(wanted("etcd", "postgres01"))
    assert result["ok"], result
    assert etcd.acted[:3] == ["start etcd with None", "healthy etcd via etcd", "add postgres01 via etcd"]
    assert result["joined"] == ["postgres01"]
    assert result["steps"][0] == "etcd did not answer: started on etcd (their own data), healthy"


def test_a_cluster_that_stays_down_takes_no_new_member():
    etcd = Etcd(bootstrapped=("etcd",), down=True, fail={"healthy": "etcd_cluster: expected every endpoint reachable"})
    result = etcd.run(wanted("etcd", "postgres01"))
    assert not result["ok"] and "expected every endpoint reachable" in result["comment"]
    assert not any(act.startswith("add") for act in etcd.acted)


def test_a_cluster_down_with_every_member_bootstrapped_is_left_to_the_etcd_stage():
    etcd = Etcd(started=("etcd", "postgres01"), down=True)
    result = etcd.run(wanted("etcd", "postgres01"))
    assert result["ok"] and etcd.acted == []
    assert "none joins" in result["comment"]


def test_a_failed_start_stops_the_run_and_says_what_was_done():
    etcd = Etcd(fail={"start": "etcd's states on postgres01 failed: pgha-etcd-service-running"})
    result = etcd.run(wanted("etcd", "postgres01", "postgres02"))
    assert not result["ok"] and result["joined"] == []
    assert "pgha-etcd-service-running" in result["comment"]
    assert result["steps"] == ["member postgres01 (https://127.0.0.15:2380) added through etcd"]
    assert not any("postgres02" in act for act in etcd.acted)


def test_an_unhealthy_cluster_after_a_join_stops_the_run():
    etcd = Etcd(fail={"healthy": "etcd_cluster: expected every endpoint reachable"})
    result = etcd.run(wanted("etcd", "postgres01", "postgres02"))
    assert not result["ok"] and result["joined"] == []
    assert etcd.acted[-1] == "healthy etcd,postgres01 via etcd"


def test_a_host_that_left_but_cannot_be_stopped_is_reported_not_fatal():
    etcd = Etcd(started=("etcd", "postgres04"), fail={"retire": "pgha: minion postgres04 did not answer"})
    result = etcd.run(wanted("etcd"))
    assert result["ok"] and result["left"] == ["postgres04"]
    assert any("etcd on postgres04 not stopped" in step and "move its data directory aside" in step
               for step in result["steps"])
    assert result["kept_data"] == []


def test_plan_matches_members_by_name_or_peer_url():
    members = [{"id": "1", "name": "etcd", "peer_urls": [URL["etcd"]]},
               {"id": "2", "name": "", "peer_urls": [URL["postgres01"]]},
               {"id": "3", "name": "old", "peer_urls": ["https://127.0.0.99:2380"]}]
    joining, leaving = members_util.plan(wanted("etcd", "postgres01", "postgres02"), members)
    # postgres01 was added and never started: it joins (started, not added again); it does not leave
    assert joining == ["postgres01", "postgres02"]
    assert [m["name"] for m in leaving] == ["old"]


@pytest.mark.parametrize("names", [(), ("postgres01",)])
def test_no_member_that_stays_refuses(names):
    # every member of the cluster is one pillar dropped: nothing to act through
    etcd = Etcd(started=("postgres04",), bootstrapped=("postgres04",))
    result = etcd.run(wanted("etcd", *names))
    assert not result["ok"]
    assert "no member of the cluster is an etcd node of pillar" in result["comment"]
    assert etcd.acted == []


def test_a_change_waits_while_etcd_says_the_cluster_is_not_ready():
    # right after a join etcd refuses the next change for a few seconds ("unhealthy cluster")
    busy = "etcd_cluster: adding member postgres02: etcdserver: unhealthy cluster (UNAVAILABLE)"
    etcd = Etcd(fail={"add": [busy, busy]})
    result = etcd.run(wanted("etcd", "postgres01"))
    assert result["ok"] and result["joined"] == ["postgres01"]
    assert etcd.acted.count("add postgres01 via etcd") == 3


def test_a_cluster_not_ready_within_the_timeout_fails_the_run():
    etcd = Etcd(started=("etcd", "postgres04"), fail={"remove": "etcdserver: unhealthy cluster (UNAVAILABLE)"})
    result = etcd.run(wanted("etcd"), timeout=0)
    assert not result["ok"] and "unhealthy cluster" in result["comment"] and result["left"] == []


def test_other_refusals_are_not_retried():
    etcd = Etcd(fail={"add": "etcdserver: Peer URLs already exists (INVALID_ARGUMENT)"})
    result = etcd.run(wanted("etcd", "postgres01"))
    assert not result["ok"] and etcd.acted == ["add postgres01 via etcd"]
