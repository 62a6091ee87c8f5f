"""
Unit tests of the drill's network partitions (_utils/pgha_partitions.py,
run by the engine of _utils/pgha_drill.py) against test_pgha_drill's fake
cluster, extended: a cut-off leader loses its role to the sync standby, a
client beside it writes straight to it; and of the hosts' side of a cut
(_modules/pgha_net.py) with Salt's cmd.run_all faked. The real cuts are
drilled on the namespaced lab (`python -m bench --partitions`).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import test_pgha_drill as base
from pgha_test_helpers import load
from salt.exceptions import CommandExecutionError
from test_pgha_drill import ADDRESSES, FakeCluster, FakeWriter, context, drill, faults

net = load("_modules", "pgha_net")
partitions = load("_utils", "pgha_partitions")


class CutCluster(FakeCluster):
    """The fake cluster, where a cut-off leader is replaced (its key expires) and cut-off hosts are recorded."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cut: dict[str, list[str]] = {}
        self.asked_first: list = []
        self.failsafe = True
        self.shared = False  # the hosts share one network stack (the loopback lab)

    def _act(self, minion: str, function: str, kwargs: dict) -> dict:
        if function == "pgha_net.cut":
            addresses = self.calls[-1][2]
            self.cut[minion] = list(addresses)
            etcd_only = set(addresses) == {"10.131.0.5"}
            if minion == self.leader and not (etcd_only and self.failsafe):
                self._promote()
            elif minion == self.sync:
                self.sync = next(n for n in ADDRESSES if n not in (self.leader, minion))
            return {"cut": addresses, "cut_at": time.time()}
        if function == "pgha_net.heal":
            self.cut.pop(minion, None)
            return {"healed": True}
        if function == "pgha_net.check":
            return {"ok": not self.shared, "problems": ["10.131.0.5 is reached through this host's loopback"]
                    if self.shared else []}
        return super()._act(minion, function, kwargs)

    def any_member(self, path: str):
        return "postgres01", {"synchronous_mode": self.sync is not None, "failsafe_mode": self.failsafe}


class BesideWriter(FakeWriter):
    """A client beside the old leader: acknowledged while postgres01 leads, and ``late`` times after."""

    def __init__(self, fake: CutCluster, late: int = 0):
        super().__init__(fake)
        self.late = late

    def _run(self) -> None:
        seq = drill.OLD_LEADER_SEQ
        while not self.stopping.is_set():
            now = time.time()
            ok = self.fake.leader == "postgres01" or self.late > 0
            if self.fake.leader != "postgres01" and self.late > 0:
                self.late -= 1
            self.records.append({"seq": seq, "sent": now, "acked": now if ok else None, "ended": now,
                                 "server": ADDRESSES["postgres01"] if ok else None, "error": None if ok else "Err"})
            seq += 1
            time.sleep(0.01)


@pytest.fixture
def cut(monkeypatch):
    cluster = CutCluster()
    writer = FakeWriter(cluster)
    beside = {"writer": BesideWriter(cluster)}
    connections: list = []

    def make_writer(dsn, run, first_seq=1, **kwargs):
        if first_seq == drill.OLD_LEADER_SEQ:
            beside["dsn"] = dsn
            return beside["writer"]
        return writer

    def connect(dsn, autocommit=False):
        class Everything(base.FakeConnection):  # both writers' acknowledged rows are read back
            def execute(self, statement, params=None):
                self.statements.append(statement)
                if statement.startswith("SELECT seq"):
                    rows = self.writer.records + beside["writer"].records
                    return [(r["seq"],) for r in rows if r["acked"] and r["seq"] not in cluster.lose]
                return []
        connections.append(Everything(writer, cluster))
        return connections[-1]

    monkeypatch.setattr(drill, "Writer", make_writer)
    cluster.writer, cluster.beside, cluster.connections = writer, beside, connections
    monkeypatch.setattr(drill.psycopg, "connect", connect)
    monkeypatch.setattr(drill, "SETTLE_S", 0.05)
    monkeypatch.setattr(drill, "POLL", 0.01)
    monkeypatch.setattr(drill, "HOLD_POLL", 0.01)
    return cluster


def partitioned(cluster: CutCluster, mode: str, **given) -> dict:
    reach, options = context(cluster, partition_s=0.3, **given)
    original = reach.api.members
    reach.api.members = lambda first=None: (cluster.asked_first.append(first), original())[1]
    result, _ = drill.run(reach, faults.fault(mode), options)
    return result


def test_partition_leader_cuts_it_off_from_every_host_heals_it_and_measures_its_side(cut):
    result = partitioned(cut, "partition-leader")
    assert result["ok"] is True, result["problems"]
    assert (result["old_leader"], result["new_leader"]) == ("postgres01", "postgres02")
    cuts = [c for c in cut.calls if c[1] == "pgha_net.cut"]
    assert [c[0] for c in cuts] == ["postgres01"]
    checks = [c for c in cut.calls if c[1] == "pgha_net.check"]
    assert checks and checks[0][2] == cuts[0][2] and cut.calls.index(checks[0]) < cut.calls.index(cuts[0])
    # every other node of the production pillar (replicas, etcd, HAProxy, backup, monitor), never the master
    assert sorted(cuts[0][2]) == sorted(["127.0.200.2", "127.0.200.3", "10.131.0.5", "10.131.0.3", "10.131.0.9",
                                         "10.131.0.10"])
    seconds = dict(cuts[0][3:])["seconds"]
    assert seconds > 0.3  # the kernel heals it later, by itself, only if the drill cannot
    assert [c[:2] for c in cut.calls][-1] == ("postgres01", "pgha_net.heal") and not cut.cut
    assert result["restored"] == ["partition healed on postgres01"]
    assert result["cut_off"] == ["postgres01"] and result["partition_s"] == 0.3
    # the client beside the old leader writes to it straight, not through HAProxy
    assert "host=127.0.200.1" in cut.beside["dsn"] and "port=5432" in cut.beside["dsn"]
    assert result["old_leader_acked"] > 0 and result["old_leader_lost"] == 0
    assert result["old_leader_acked_after_promotion"] == 0 and result["acked_on_old_after_promotion"] == 0
    assert result["old_leader_writable_s"] >= 0
    # the cluster is read from the side that keeps etcd: the cut-off leader's view is stale
    assert ["postgres02", "postgres03"] in cut.asked_first


def test_a_write_the_old_leader_acknowledges_after_the_promotion_fails_the_drill(cut):
    cut.beside["writer"] = BesideWriter(cut, late=5)
    result = partitioned(cut, "partition-leader")
    assert result["ok"] is False
    assert result["old_leader_acked_after_promotion"] >= 1
    assert any("acknowledged by the old leader" in p for p in result["problems"])


def test_a_lost_write_the_old_leader_acknowledged_counts_as_lost(cut):
    cut.lose = {drill.OLD_LEADER_SEQ}
    result = partitioned(cut, "partition-leader")
    assert result["old_leader_lost"] == 1 and result["lost"] >= 1 and result["ok"] is False


def test_partition_replica_cuts_the_synchronous_standby_and_waits_for_another(cut):
    result = partitioned(cut, "partition-replica")
    assert result["ok"] is True, result["problems"]
    assert result["fault_target"] == "postgres02" and result["cut_off"] == ["postgres02"]
    assert result["sync_switch_s"] is not None and result["new_leader"] is None
    assert "old_leader_writable_s" not in result  # nobody writes beside the leader: it is not cut off


def test_partition_leader_dcs_cuts_only_etcd_and_with_failsafe_the_leader_stays(cut):
    result = partitioned(cut, "partition-leader-dcs")
    assert result["ok"] is True, result["problems"]
    assert result["cut_from"] == ["etcd"] and result["failsafe_mode"] is True
    assert result["new_leader"] is None and result["failed_writes"] == 0


def test_partition_leader_dcs_without_failsafe_expects_another_leader(cut):
    cut.failsafe = False
    result = partitioned(cut, "partition-leader-dcs")
    assert result["ok"] is True, result["problems"]
    assert result["new_leader"] == "postgres02" and result["failsafe_mode"] is False


def test_an_etcd_minority_needs_three_members_and_touches_nothing(cut):
    result = partitioned(cut, "partition-etcd-minority")
    assert result["ok"] is False and "etcd has 1 member(s): a minority side needs three" in result["comment"]
    assert cut.calls == []


def test_etcd_minority_sides_keep_the_leader_with_one_member():
    class Cluster:
        etcd_nodes = ("etcd", "postgres01", "postgres02")
        pg_nodes = ("postgres01", "postgres02", "postgres03")
        nodes = ("postgres01", "postgres02", "postgres03", "etcd", "haproxy")

    class Reach:
        cluster = Cluster()

    unit = partitions.PartitionEtcdMinority()
    # a leader that is an etcd member is alone on its side; one that is not takes the etcd-only host along
    assert unit.sides(Reach(), [], {"name": "postgres01"}) == (
        ["postgres01"], ["postgres02", "postgres03", "etcd", "haproxy"])
    assert unit.sides(Reach(), [], {"name": "postgres03"}) == (
        ["postgres03", "etcd"], ["postgres01", "postgres02", "haproxy"])


def test_on_hosts_sharing_one_network_stack_the_drill_is_refused_and_touches_nothing(cut):
    cut.shared = True
    result = partitioned(cut, "partition-leader")
    assert result["ok"] is False
    assert "partition-leader cannot cut postgres01 off: 10.131.0.5 is reached through this host's loopback" in (
        result["comment"])
    assert [c[1] for c in cut.calls] == ["pgha_net.check"] and not cut.connections  # no writer, no cut


def test_a_cut_that_fails_is_healed_anyway_and_not_reported_healed(cut):
    cut.fail["pgha_net.cut"] = CommandExecutionError("pgha_net: no `nft` on this host")
    real = cut._act
    cut._act = lambda minion, function, kwargs: {"healed": False} if function == "pgha_net.heal" else real(
        minion, function, kwargs)
    result = partitioned(cut, "partition-leader")
    assert result["ok"] is False and any("no `nft`" in p for p in result["problems"])
    # an answer lost on the way may hide a cut made: the heal is asked all the same, and said only when done
    assert [c[:2] for c in cut.calls if c[1] == "pgha_net.heal"] == [("postgres01", "pgha_net.heal")]
    assert result["restored"] == []


# ---------------------------------------------------------------------------
# the host's side: _modules/pgha_net.py
# ---------------------------------------------------------------------------


class FakeShell:
    def __init__(self, routes: dict | None = None, nft_rc: int = 0):
        self.routes = routes or {}
        self.nft_rc = nft_rc
        self.runs: list = []
        self.lock = threading.Lock()

    def __call__(self, cmd, stdin=None, **kwargs):
        self.runs.append((cmd, stdin))
        if cmd[:3] == ["ip", "-j", "route"]:
            dev, kind = self.routes.get(cmd[-1], ("eth0", "unicast"))
            return {"retcode": 0, "stdout": json.dumps([{"dst": cmd[-1], "dev": dev, "type": kind}]), "stderr": ""}
        if cmd[:2] == ["nft", "-j"]:
            body = {"nftables": [{"set": {"name": "cut", "elem": [{"elem": {"val": "198.18.0.5", "timeout": 30}}]}}]}
            return {"retcode": self.nft_rc, "stdout": json.dumps(body), "stderr": ""}
        return {"retcode": self.nft_rc, "stdout": "", "stderr": "Error: No such file or directory" if self.nft_rc else ""}


@pytest.fixture
def shell(monkeypatch):
    fake = FakeShell()
    net.__salt__ = {"cmd.run_all": fake}
    monkeypatch.setattr(net.shutil, "which", lambda name: f"/usr/sbin/{name}")
    return fake


def test_a_cut_drops_both_ways_in_a_table_of_its_own_and_expires_by_itself(shell):
    answer = net.cut("198.18.0.5,198.18.0.32", seconds=45)
    assert answer["cut"] == ["198.18.0.5", "198.18.0.32"] and answer["heals_by"] - answer["cut_at"] == 45
    command, script = shell.runs[-1]
    assert command == ["nft", "-f", "-"]
    assert "table inet pgha_partition" in script
    assert "hook input" in script and "ip saddr @cut drop" in script
    assert "hook output" in script and "ip daddr @cut drop" in script
    assert "198.18.0.5 timeout 45s, 198.18.0.32 timeout 45s" in script


def test_heal_removes_the_table_and_says_whether_there_was_one(shell):
    assert net.heal()["healed"] is True
    assert shell.runs[-1][0] == ["nft", "delete", "table", "inet", "pgha_partition"]
    shell.nft_rc = 1
    assert net.heal()["healed"] is False
    assert net.cuts() == []


def test_cuts_lists_the_addresses_cut_off(shell):
    assert net.cuts() == ["198.18.0.5"]


@pytest.mark.parametrize("addresses, seconds, problem", [
    ("", 10, "addresses: none given"),
    ("198.18.0.5,db01", 10, "'db01' is not an IPv4 address"),
    ("198.18.0.5", 0, "seconds: 0 must be between 1 and 3600"),
    ("198.18.0.5", "soon", "seconds: 'soon' is not a number"),
])
def test_bad_input_is_refused_before_anything_is_cut(shell, addresses, seconds, problem):
    with pytest.raises(CommandExecutionError, match=problem):
        net.cut(addresses, seconds=seconds)
    assert not [run for run in shell.runs if run[0][0] == "nft"]


def test_hosts_sharing_one_network_stack_cannot_be_cut_apart(shell):
    shell.routes = {"127.0.0.5": ("lo", "local")}
    with pytest.raises(CommandExecutionError, match="127.0.0.5 is reached through this host's loopback .* share one network stack"):
        net.cut(["127.0.0.5"], seconds=10)
    assert not [run for run in shell.runs if run[0][0] == "nft"]


def test_without_nft_the_error_says_which_package(shell, monkeypatch):
    monkeypatch.setattr(net.shutil, "which", lambda name: None)
    with pytest.raises(CommandExecutionError, match="no `nft` on this host .*nftables"):
        net.cut(["198.18.0.5"], seconds=10)


def test_check_says_what_keeps_a_cut_from_being_made_and_changes_nothing(shell):
    assert net.check("198.18.0.5") == {"ok": True, "addresses": ["198.18.0.5"], "problems": []}
    shell.routes = {"127.0.0.5": ("lo", "local")}
    answer = net.check(["127.0.0.5", "nowhere"])
    assert answer["ok"] is False and len(answer["problems"]) == 2
    assert "share one network stack" in answer["problems"][1] or "share one network stack" in answer["problems"][0]
    assert not [run for run in shell.runs if run[0][0] == "nft"]
