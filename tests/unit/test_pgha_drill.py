"""
Unit tests of the failover drill's engine (_utils/pgha_drill.py) and of its
fault units (_utils/pgha_faults.py).

The measures are tested on hand-built writer records. The writer itself
against sockets that refuse or never answer. The engine runs whole drills
against a fake cluster: members that change when the fault units call the
minions' functions (stop, crash, freeze, switchover, etcd stop/start), a
writer that acknowledges on whoever leads, and psycopg's connection
replaced; so every path is checked: success, lost writes, a fault that
fails, a cluster that never recovers, and the fault always undone.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest
from pgha_test_helpers import cluster_model, load
from salt.exceptions import CommandExecutionError

drill = load("_utils", "pgha_drill")
faults = load("_utils", "pgha_faults")
cluster_util = load("_utils", "pgha_cluster")
reach_util = load("_utils", "pgha_reach")

T0 = 1_700_000_000.0
OLD = "10.131.0.11"
NEW = "10.131.0.12"


def rec(seq: int, sent: float, acked: float | None = None, server: str | None = None, error: str | None = None,
        ended: float | None = None) -> dict:
    """One writer record, times relative to T0; a failure ends 0.01 s after it was sent unless told."""
    end = acked if acked is not None else (ended if ended is not None else sent + 0.01)
    return {"seq": seq, "sent": T0 + sent, "acked": None if acked is None else T0 + acked, "server": server,
            "error": error if acked is None else None, "ended": T0 + end}


def clean_failover() -> list[dict]:
    """Five acks on the old leader, the fault at 0.55 s, four failed attempts, three acks on the new one."""
    return [
        rec(1, 0.09, 0.10, OLD), rec(2, 0.19, 0.20, OLD), rec(3, 0.29, 0.30, OLD), rec(4, 0.39, 0.40, OLD),
        rec(5, 0.49, 0.50, OLD),
        rec(6, 0.60, error="OperationalError", ended=0.90),  # the insert in flight at the fault
        rec(7, 1.00, error="OperationalError"), rec(8, 2.00, error="OperationalError"),
        rec(9, 3.00, error="ConnectTimeout", ended=3.50),
        rec(10, 3.60, 4.20, NEW), rec(11, 4.29, 4.30, NEW), rec(12, 4.39, 4.40, NEW),
    ]


FAULT = T0 + 0.55
ALL_ACKED = {1, 2, 3, 4, 5, 10, 11, 12}


# ---------------------------------------------------------------------------
# analyse
# ---------------------------------------------------------------------------


def test_analyse_clean_failover():
    assert drill.analyse(clean_failover(), FAULT, OLD, NEW, set(ALL_ACKED)) == {
        "rto_s": 3.65,  # the first ack on the new leader (4.20) minus the fault (0.55)
        "write_gap_s": 3.7,  # 4.20 minus the last ack before it (0.50)
        "attempts": 12,
        "acked": 8,
        "lost": 0,
        "lost_seqs": [],
        "in_doubt": 0,
        "failed_writes": 4,
        "unavailable_s": 2.9,  # the first failed attempt sent at 0.60 to the last one's end at 3.50
        "client_stall_s": 0.6,  # seq 10 waited 0.60 s for its acknowledgement
        "acked_on_old_after_promotion": 0,
        "errors": {"OperationalError": 3, "ConnectTimeout": 1},
    }


def test_analyse_names_what_failed_the_attempts():
    records = clean_failover()
    records[5]["detail"] = "server closed the connection unexpectedly"
    errors = drill.analyse(records, FAULT, OLD, NEW, set(ALL_ACKED))["errors"]
    assert errors == {"OperationalError": 2, "ConnectTimeout": 1,
                      "OperationalError: server closed the connection unexpectedly": 1}


def test_analyse_records_in_any_order():
    result = drill.analyse(list(reversed(clean_failover())), FAULT, OLD, NEW, set(ALL_ACKED))
    assert (result["rto_s"], result["write_gap_s"], result["acked"], result["unavailable_s"]) == (3.65, 3.7, 8, 2.9)


def test_analyse_counts_and_lists_lost_writes():
    result = drill.analyse(clean_failover(), FAULT, OLD, NEW, ALL_ACKED - {4, 5})
    assert (result["lost"], result["lost_seqs"], result["acked"], result["in_doubt"]) == (2, [4, 5], 8, 0)


def test_analyse_lost_seqs_sorted_and_capped_at_50():
    records = [rec(seq, seq * 0.01, seq * 0.01 + 0.001, OLD) for seq in range(70, 0, -1)]
    records.append(rec(71, 1.5, 2.0, NEW))
    present = {seq for seq in range(1, 72) if seq > 60 or seq % 2}  # even seqs up to 60 lost
    result = drill.analyse(records, T0 + 1.0, OLD, NEW, present)
    assert result["lost"] == 30 and result["lost_seqs"] == list(range(2, 61, 2))
    everything = drill.analyse(records, T0 + 1.0, OLD, NEW, set())
    assert everything["lost"] == 71 and everything["lost_seqs"] == list(range(1, 51))


def test_analyse_in_doubt_failed_but_committed():
    result = drill.analyse(clean_failover(), FAULT, OLD, NEW, ALL_ACKED | {6})
    assert (result["in_doubt"], result["lost"], result["acked"]) == (1, 0, 8)


def test_analyse_two_writable_primaries_at_once():
    records = clean_failover()
    # the old leader acknowledges at 4.25 and 4.35, while the new one does too
    records += [rec(13, 4.24, 4.25, OLD), rec(14, 4.34, 4.35, OLD)]
    result = drill.analyse(records, FAULT, OLD, NEW, ALL_ACKED | {13, 14})
    assert result["acked_on_old_after_promotion"] == 2
    # acknowledgements by the old leader after the new one's last are a leader taken back, not two at once
    later = clean_failover() + [rec(13, 5.0, 5.1, OLD)]
    assert drill.analyse(later, FAULT, OLD, NEW, ALL_ACKED | {13})["acked_on_old_after_promotion"] == 0


def test_analyse_without_a_new_leader_measures_the_stall_only():
    # a synchronous standby lost: commits wait 1.2 s, nothing fails, the leader stays
    records = [rec(1, 0.1, 0.11, OLD), rec(2, 0.5, 1.7, OLD), rec(3, 1.72, 1.73, OLD)]
    result = drill.analyse(records, T0 + 0.45, OLD, None, {1, 2, 3})
    assert result["rto_s"] is None
    assert result["failed_writes"] == 0 and result["unavailable_s"] is None
    assert result["client_stall_s"] == 1.2
    assert result["write_gap_s"] == 1.59  # 0.11 to 1.70


def test_analyse_same_address_is_no_failover():
    records = [dict(r, server=OLD) if r["server"] == NEW else r for r in clean_failover()]
    assert drill.analyse(records, FAULT, OLD, OLD, set(ALL_ACKED))["rto_s"] is None


def test_analyse_ignores_new_leader_acks_before_the_fault():
    records = clean_failover()
    records[2] = rec(3, 0.29, 0.30, NEW)
    assert drill.analyse(records, FAULT, OLD, NEW, set(ALL_ACKED))["rto_s"] == 3.65


def test_analyse_empty():
    result = drill.analyse([], FAULT, OLD, NEW, set())
    assert (result["attempts"], result["acked"], result["lost"], result["failed_writes"]) == (0, 0, 0, 0)
    assert result["rto_s"] is None and result["write_gap_s"] is None and result["client_stall_s"] is None


# ---------------------------------------------------------------------------
# the writer, against sockets that refuse or never answer
# ---------------------------------------------------------------------------


def test_writer_gives_up_a_hanging_connection_within_its_own_timeout():
    """HAProxy with no server keeps a new connection waiting: the writer tries again after its own 0.3 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # the kernel accepts, nobody answers
    port = server.getsockname()[1]
    writer = drill.Writer(f"host=127.0.0.1 port={port} user=x password=y dbname=pgha connect_timeout=10", "unit",
                          pause=0.0, connect_timeout=0.3)
    try:
        writer.start()
        time.sleep(1.6)
    finally:
        writer.stopping.set()
        writer.join(timeout=5)
        server.close()
    assert not writer.is_alive()
    assert len(writer.records) >= 3, writer.records
    assert all(r["error"] == "ConnectTimeout" and r["acked"] is None and r["ended"] for r in writer.records)
    assert max(b["sent"] - a["sent"] for a, b in itertools.pairwise(writer.records)) < 1.0


def test_writer_records_refused_connections():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    writer = drill.Writer(f"host=127.0.0.1 port={port} user=x dbname=pgha", "unit", pause=0.0)
    writer.start()
    time.sleep(0.5)
    writer.stopping.set()
    writer.join(timeout=5)
    assert writer.records and all(r["error"] == "OperationalError" for r in writer.records)


# ---------------------------------------------------------------------------
# whole drills against a fake cluster
# ---------------------------------------------------------------------------

ADDRESSES = {"postgres01": "127.0.200.1", "postgres02": "127.0.200.2", "postgres03": "127.0.200.3"}


class FakeCluster:
    """Three members and one etcd; the minions' functions the fault units call change it."""

    def __init__(self, synchronous: bool = True):
        self.leader, self.timeline = "postgres01", 3
        self.down: set[str] = set()  # Patroni not running
        self.frozen: set[str] = set()
        self.etcd_up = True
        self.sync = "postgres02" if synchronous else None
        self.calls: list[tuple] = []
        self.lose: set[int] = set()  # acknowledged rows the fake database "loses"
        self.fail: dict[str, Exception] = {}  # function -> error to raise
        self.frozen_since = 0.0
        self.paused = False  # PgBouncer
        self.lock = threading.Lock()

    # the minions' functions -------------------------------------------------
    def call(self, minion: str, function: str, *args, wait: int = 60, **kwargs):
        self.calls.append((minion, function, *args, *sorted(kwargs.items())))
        if function in self.fail:
            raise self.fail[function]
        if function == "pgha_pooler.resume_when_routed":
            return self._resume_when_routed(kwargs["away_from"], kwargs["timeout"])
        with self.lock:
            return self._act(minion, function, kwargs)

    def _act(self, minion: str, function: str, kwargs: dict) -> dict:
        now = time.time()
        if function in ("pgha_service.stop", "pgha_service.crash") and minion in ADDRESSES:
            self.down.add(minion)
            if minion == self.leader:
                self._promote()
            elif minion == self.sync:
                self.sync = next(n for n in ADDRESSES if n not in (self.leader, minion))
            return {"stopping_at": now, "killed_at": now}
        if function == "pgha_service.start" and minion in ADDRESSES:
            self.down.discard(minion)
            return {"running": True}
        if function == "pgha_service.freeze":
            self.frozen.add(minion)
            self.frozen_since = now
            return {"frozen_at": now}
        if function == "pgha_service.thaw":
            self.frozen.discard(minion)
            return {}
        if function == "pgha_pooler.pause":
            self.paused = True
            return {"paused": True, "paused_at": now}
        if function == "pgha_pooler.resume":
            changed, self.paused = self.paused, False
            return {"changed": changed, "resumed_at": now}
        if function in ("pgha_service.stop", "pgha_service.start"):  # etcd
            self.etcd_up = function.endswith("start")
            return {"stopping_at": now}
        raise AssertionError(f"unexpected call {function}")

    def _resume_when_routed(self, away_from: str, timeout: float) -> dict:
        """The pooler's host: resumed once the leader moved (or nothing is paused any more), else at the timeout."""
        deadline = time.monotonic() + timeout
        while self.leader == away_from and self.paused and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            moved, answer = self.leader != away_from, self._act("haproxy", "pgha_pooler.resume", {})
        if not moved:
            raise CommandExecutionError(f"pgha_pooler: HAProxy's leader port did not route away from {away_from}")
        return dict(answer, routed_to=self.leader)

    def switchover(self, body: dict) -> dict:
        """POST /switchover: Patroni answers once the new leader holds the key."""
        self.calls.append(("api", "POST /switchover", *sorted(body.items())))
        if "POST /switchover" in self.fail:
            raise self.fail["POST /switchover"]
        time.sleep(0.2)
        with self.lock:
            self._promote(body.get("candidate"))
        return {}

    def _promote(self, candidate: str | None = None) -> None:
        old = self.leader
        self.leader = candidate or self.sync or next(n for n in ADDRESSES if n != old and n not in self.down)
        self.timeline += 1
        if self.sync == self.leader:
            self.sync = old

    # what the engine reads ---------------------------------------------------
    def members(self) -> list[dict]:
        with self.lock:
            if self.leader in self.frozen and time.time() - self.frozen_since > 0.2:
                self._promote()  # the leader key expires: another member takes over
            out = []
            for name in sorted(ADDRESSES):
                stale = name in self.down or name in self.frozen
                role = "leader" if name == self.leader else ("sync_standby" if name == self.sync else "replica")
                out.append({"name": name, "role": role, "state": "stopped" if name in self.down else "running",
                            "timeline": self.timeline - (1 if stale else 0), "lag": 0,
                            "streaming": False if name == self.leader else not stale})
            return out

    def stats(self) -> dict:
        """HAProxy's statistics as the stats page gives them: the leader's listener."""
        return {"postgres": {name: {"status": "UP" if name == self.leader and name not in self.down else "DOWN"}
                             for name in ADDRESSES}}

    def any_member(self, path: str):
        return "postgres01", {"synchronous_mode": self.sync is not None, "failsafe_mode": True}


class FakeAPI:
    def __init__(self, fake: FakeCluster):
        self.fake = fake

    def members(self):
        return self.fake.members()

    def any_member(self, path, method="GET", body=None, **kwargs):
        if method == "POST" and path == "/switchover":
            return "postgres01", self.fake.switchover(body)
        return self.fake.any_member(path)


class FakeWriter:
    """Acknowledges a row on the leader's address every 10 ms, fails while Patroni on the leader is down."""

    def __init__(self, fake: FakeCluster):
        self.fake, self.records, self.connect_timeout = fake, [], 0.5
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __call__(self, dsn: str, run: str) -> FakeWriter:
        return self

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        for seq in itertools.count(1):
            if self.stopping.is_set():
                return
            sent = time.time()
            while self.fake.paused and not self.stopping.is_set():  # PgBouncer holds the query
                time.sleep(0.005)
            with self.fake.lock:
                leader = self.fake.leader
                ok = leader not in self.fake.down and leader not in self.fake.frozen
            record = {"seq": seq, "sent": sent, "acked": None, "server": None, "error": None, "ended": time.time()}
            if ok:
                record.update(acked=record["ended"], server=ADDRESSES[leader])
            else:
                record["error"] = "OperationalError"
            self.records.append(record)
            time.sleep(0.01)


class FakeConnection:
    def __init__(self, writer: FakeWriter, fake: FakeCluster):
        self.writer, self.fake, self.statements = writer, fake, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement: str, params=None):
        self.statements.append(statement)
        if statement.startswith("SELECT seq"):
            return [(r["seq"],) for r in self.writer.records if r["acked"] and r["seq"] not in self.fake.lose]
        return []


@pytest.fixture
def fake(monkeypatch):
    cluster = FakeCluster()
    writer = FakeWriter(cluster)
    connections: list[FakeConnection] = []

    def connect(dsn, autocommit=False):
        connections.append(FakeConnection(writer, cluster))
        return connections[-1]

    monkeypatch.setattr(drill, "Writer", writer)
    cluster.writer = writer
    monkeypatch.setattr(drill.psycopg, "connect", connect)
    monkeypatch.setattr(drill, "SETTLE_S", 0.05)
    monkeypatch.setattr(drill, "POLL", 0.01)
    cluster.connections = connections
    return cluster


def context(fake: FakeCluster, timeout: float = 3.0, pooler: bool = False, pool_mode: str = "transaction",
            **given) -> tuple:
    """The cluster as the runner reaches it (a real model, the fake's ways in) and the drill's options."""
    model = cluster_model({"pgbouncer": {"enabled": pooler, "pool_mode": pool_mode}}, addresses=ADDRESSES)
    reach = reach_util.Reach(model, fake.call, FakeAPI(fake), fake.stats, cluster_util.rules())
    options = drill.Options(**dict({"timeout": timeout, "dsn": "dbname=pgha", "report_dir": None, "candidate": None,
                                    "member": None, "freeze_s": 0.5, "outage_s": 0.3, "path": "leader"}, **given))
    return reach, options


def drilled(fake: FakeCluster, mode: str, **kwargs) -> dict:
    reach, options = context(fake, **kwargs)
    result, records = drill.run(reach, faults.fault(mode), options)
    assert records is fake.writer.records or records == []
    return result


def test_stop_drill_moves_the_leader_and_starts_the_old_one(fake):
    result = drilled(fake, "stop")
    assert result["ok"] is True, result["problems"]
    assert (result["old_leader"], result["new_leader"], result["leader_after"]) == ("postgres01", "postgres02",
                                                                                 "postgres02")
    assert (result["timeline_before"], result["timeline_after"]) == (3, 4)
    assert result["lost"] == 0 and result["acked"] > 0 and result["rto_s"] is not None
    assert result["restored"] == ["patroni started on postgres01"]
    assert result["replicas_streaming"] == 2 and result["rejoin_s"] is not None
    assert [c[:3] for c in fake.calls] == [("postgres01", "pgha_service.stop", "patroni"),
                                           ("postgres01", "pgha_service.start", "patroni")]
    assert result["haproxy_after"]["postgres02"] == "UP"
    statements = [s for c in fake.connections for s in c.statements]
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS pgha_drill")
    assert statements[-1].startswith("DELETE FROM pgha_drill")  # the drill keeps nothing


def test_lost_acknowledged_writes_fail_the_drill(fake):
    fake.lose = {3, 4}
    result = drilled(fake, "stop")
    assert result["ok"] is False
    assert result["lost"] == 2 and result["lost_seqs"] == [3, 4]
    assert "2 acknowledged writes lost" in result["problems"]


def test_a_fault_that_fails_is_still_undone(fake):
    fake.fail["pgha_service.crash"] = CommandExecutionError("pgha: pgha_service.crash on postgres01 failed: boom")
    result = drilled(fake, "crash", timeout=0.5)
    assert result["ok"] is False
    assert "pgha: pgha_service.crash on postgres01 failed: boom" in result["problems"]
    assert ("postgres01", "pgha_service.start", "patroni") in [c[:3] for c in fake.calls]
    assert result["restored"] == ["patroni started on postgres01"]


def test_a_cluster_that_does_not_recover_is_reported_and_the_fault_undone(fake, monkeypatch):
    def members_without_recovery() -> list[dict]:
        members = FakeCluster.members(fake)
        for member in members:
            if member["name"] == "postgres01":
                member.update(streaming=False, timeline=member["timeline"] - 1)
        return members

    monkeypatch.setattr(fake, "members", members_without_recovery)
    result = drilled(fake, "stop", timeout=0.5)
    assert result["ok"] is False
    assert any("not healthy within" in p and "postgres01 does not stream" in p for p in result["problems"])
    assert result["restored"] == ["patroni started on postgres01"]


def test_switchover_undoes_nothing_and_times_the_rejoin_from_the_promotion(fake):
    result = drilled(fake, "switchover", candidate="postgres02")
    assert result["ok"] is True, result["problems"]
    assert result["new_leader"] == "postgres02" and result["restored"] == []
    # asked by the master of the members' REST API, the leader named, the candidate given
    assert fake.calls == [("api", "POST /switchover", ("candidate", "postgres02"), ("leader", "postgres01"))]


def test_switchover_through_the_pooler_pauses_it_for_the_move(fake):
    result = drilled(fake, "switchover", pooler=True)
    assert result["ok"] is True, result["problems"]
    calls = [c[:2] for c in fake.calls]
    # paused first; the resume asked of the pooler's host before the switchover, done there once HAProxy routes
    assert calls[0] == ("haproxy", "pgha_pooler.pause") and sorted(calls[1:]) == [
        ("api", "POST /switchover"), ("haproxy", "pgha_pooler.resume_when_routed")]
    assert ("away_from", "postgres01") in next(c for c in fake.calls if c[1] == "pgha_pooler.resume_when_routed")
    assert result["pooler_paused"] is True and result["pooler_paused_s"] > 0
    # the clients waited; none failed
    assert result["failed_writes"] == 0 and result["lost"] == 0
    assert result["client_stall_s"] >= result["pooler_paused_s"] - 0.1
    assert result["restored"] == []  # resumed by the switchover itself: nothing left to undo


def test_a_session_pooling_pgbouncer_is_not_paused(fake):
    """A pause would wait for every session to end: the switchover goes on without it."""
    result = drilled(fake, "switchover", pooler=True, pool_mode="session")
    assert result["ok"] is True, result["problems"]
    assert [c[:2] for c in fake.calls] == [("api", "POST /switchover")]
    assert result["pooler_paused"] is False


def test_a_failed_switchover_resumes_the_pooler(fake):
    fake.fail["POST /switchover"] = CommandExecutionError("patroni: POST /switchover on postgres01 answered 412")
    result = drilled(fake, "switchover", timeout=0.5, pooler=True)
    assert result["ok"] is False and fake.paused is False
    assert "patroni: POST /switchover on postgres01 answered 412" in result["problems"]
    assert result["restored"] == ["PgBouncer resumed on haproxy"]


def test_a_pause_that_is_not_the_drills_own_is_left_alone(fake):
    """Another command's pause (the pooler paused before this drill): this drill's undoing never resumes it."""
    reach, options = context(fake, timeout=0.5, pooler=True)
    unit = faults.fault("switchover")
    plan = unit.plan(reach, options, fake.members(), {"name": "postgres01"})
    assert unit.restore(reach, options, plan) == []
    assert [c[:2] for c in fake.calls] == []


def test_freeze_holds_then_thaws(fake):
    started = time.monotonic()
    result = drilled(fake, "freeze", freeze_s=0.6)
    assert time.monotonic() - started >= 0.6
    assert [c[:3] for c in fake.calls] == [("postgres01", "pgha_service.freeze", "patroni"),
                                           ("postgres01", "pgha_service.thaw", "patroni")]
    assert result["restored"] == ["patroni resumed (SIGCONT) on postgres01"]
    assert result["freeze_s"] == 0.6
    assert result["ok"] is True, result["problems"]
    assert result["leader_after"] == "postgres02"


def test_dcs_outage_stops_and_starts_every_etcd_member(fake):
    result = drilled(fake, "dcs-outage", outage_s=0.3)
    assert [c[:3] for c in fake.calls] == [("etcd", "pgha_service.stop", "etcd"),
                                           ("etcd", "pgha_service.start", "etcd")]
    assert result["restored"] == ["etcd started on etcd"]
    assert result["ok"] is True, result["problems"]
    assert result["failed_writes"] == 0 and result["leader_after"] == "postgres01"
    assert result["failsafe_mode"] is True


def test_dcs_outage_with_failsafe_on_and_failed_writes_is_not_ok():
    unit = faults.fault("dcs-outage")
    assert unit.judge(None, {"failsafe_mode": True, "failed_writes": 3}) == [
        "failsafe_mode is on, yet 3 writes failed during the DCS outage"]
    assert unit.judge(None, {"failsafe_mode": False, "failed_writes": 3}) == []


def test_sync_standby_loss_waits_for_a_new_standby_and_restarts_the_lost_one(fake):
    result = drilled(fake, "sync-standby-loss")
    assert result["ok"] is True, result["problems"]
    assert [c[:3] for c in fake.calls] == [("postgres02", "pgha_service.crash", "patroni"),
                                           ("postgres02", "pgha_service.start", "patroni")]
    assert result["fault_target"] == "postgres02" and result["sync_switch_s"] is not None
    assert result["leader_after"] == "postgres01" and result["new_leader"] is None


def test_in_quorum_mode_a_lost_standby_is_held_down_with_no_new_standby_awaited(fake, monkeypatch):
    monkeypatch.setattr(faults, "QUORUM_HOLD_S", 0.3)
    plain = fake.members

    def quorum() -> list[dict]:  # Patroni's roles with synchronous_mode: quorum
        return [dict(m, role="quorum_standby") if m["role"] in ("sync_standby", "replica") else m for m in plain()]

    fake.members = quorum
    started = time.monotonic()
    result = drilled(fake, "sync-standby-loss")
    assert result["ok"] is True, result["problems"]
    assert result["fault_target"] == "postgres02" and result["held_s"] == 0.3
    assert time.monotonic() - started >= 0.3 and result["sync_switch_s"] is None
    assert [c[:3] for c in fake.calls] == [("postgres02", "pgha_service.crash", "patroni"),
                                           ("postgres02", "pgha_service.start", "patroni")]


def test_refusals_touch_nothing(fake):
    fake.sync = None
    result = drilled(fake, "sync-standby-loss")
    assert result["ok"] is False and "no synchronous standby" in result["comment"]
    result = drilled(fake, "etcd-member-loss")
    assert result["ok"] is False and "etcd has 1 member(s)" in result["comment"]
    fake.sync = "postgres02"
    result = drilled(fake, "switchover", candidate="postgres03")
    assert "only to a synchronous standby or a quorum standby (postgres02), not to postgres03" in result["comment"]
    assert fake.calls == [] and fake.connections == []


def test_no_leader_no_drill(fake, monkeypatch):
    monkeypatch.setattr(fake, "members", lambda: [dict(m, role="replica") for m in FakeCluster.members(fake)])
    result = drilled(fake, "stop")
    assert result["ok"] is False and "no running leader" in result["comment"]
    assert fake.calls == []


def test_modes_and_unknown_mode():
    assert faults.modes() == ["stop", "crash", "switchover", "freeze", "dcs-outage", "sync-standby-loss",
                              "etcd-member-loss", "dcs-loss", "partition-leader", "partition-leader-dcs",
                              "partition-replica", "partition-etcd-minority"]
    with pytest.raises(ValueError, match="mode must be one of stop, crash, .* \\(got 'bogus'\\)"):
        faults.fault("bogus")
