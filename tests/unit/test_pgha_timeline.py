"""
Unit tests of the drill's timeline (_utils/pgha_timeline.py): PostgreSQL's
log lines read into moments (the shutdown checkpoint, the promote request),
the phases in the order they happened, the first write on the new leader,
and the watch on the leader key against a stand-in for etcd's JSON gateway
streaming its events.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from pgha_test_helpers import load

timeline = load("_utils", "pgha_timeline")
lock = load("_utils", "pgha_lock")


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


SHUTDOWN_LOG = [
    "2026-12-04 22:40:00.100 UTC [25954] LOG:  checkpoint complete: wrote 3 buffers (0.0%); ...",  # before the fault
    "2026-12-04 22:50:54.480 UTC [25952] LOG:  received fast shutdown request",
    "2026-12-04 22:50:54.506 UTC [25954] LOG:  shutting down",
    "2026-12-04 22:50:54.685 UTC [25954] LOG:  checkpoint complete: wrote 35 buffers (0.2%); 0 WAL file(s) added",
    "2026-12-04 22:50:59.122 UTC [27071] LOG:  received promote request",
]


def test_postgresql_log_times_are_read_in_utc_to_the_millisecond():
    assert timeline.pg_time(SHUTDOWN_LOG[1]) == at("2026-12-04 22:50:54.480")
    # Patroni's own lines (a comma, local time) and a zone other than UTC: not read, rather than misread
    assert timeline.pg_time("2026-12-04 22:50:56,546 INFO: Got response from postgres02") is None
    assert timeline.pg_time("2026-12-04 22:50:54.480 CET [25952] LOG:  received fast shutdown request") is None


def test_the_shutdown_checkpoint_is_the_first_one_completed_after_shutting_down_from_the_fault_on():
    fault = at("2026-12-04 22:50:54.300")
    assert timeline.shutdown_checkpoint(SHUTDOWN_LOG, fault) == at("2026-12-04 22:50:54.685")
    # an ordinary checkpoint, no shutdown: nothing
    assert timeline.shutdown_checkpoint([SHUTDOWN_LOG[0], SHUTDOWN_LOG[3]], fault) is None
    assert timeline.shutdown_checkpoint(SHUTDOWN_LOG, at("2026-12-04 22:50:55.000")) is None
    assert timeline.first_after(SHUTDOWN_LOG, timeline.PROMOTE, fault) == at("2026-12-04 22:50:59.122")


def test_phases_follow_the_order_the_moments_happened_in():
    fault = 100.0
    marks = {"old_refusing": 100.4, "old_stopped": 101.2, "leader_released": 101.5, "leader_taken": 101.7,
             "promoted": 102.1, "haproxy_up": 102.0, "first_write_haproxy": 102.15}
    since, steps = timeline.phases(marks, fault)
    assert since == {"old_refusing": 0.4, "old_stopped": 1.2, "leader_released": 1.5, "leader_taken": 1.7,
                     "haproxy_up": 2.0, "promoted": 2.1, "first_write_haproxy": 2.15}
    assert list(steps) == list(since)  # HAProxy before the promotion: shown where it fell
    assert all(step >= 0 for step in steps.values())
    assert round(sum(steps.values()), 3) == since["first_write_haproxy"]
    assert timeline.phases({}, fault) == ({}, {})


def test_the_first_write_on_the_new_leader_after_the_fault():
    records = [{"acked": 99.0, "server": "10.0.0.2"}, {"acked": None, "server": None},
               {"acked": 101.0, "server": "10.0.0.1"}, {"acked": 102.5, "server": "10.0.0.2"},
               {"acked": 103.0, "server": "10.0.0.2"}]
    assert timeline.first_on(records, "10.0.0.2", 100.0) == 102.5
    assert timeline.first_on(records, None, 100.0) is None


class _Gateway(BaseHTTPRequestHandler):
    """etcd's /v3/watch: a created answer, then the events the test scripted, one JSON object per line."""

    events: ClassVar[list] = []
    requests: ClassVar[list] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        _Gateway.requests.append((self.path, json.loads(self.rfile.read(length))))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"result": {"created": True}}).encode() + b"\n")
        self.wfile.flush()
        for pause, event in self.events:
            time.sleep(pause)
            self.wfile.write(json.dumps({"result": {"events": [event]}}).encode() + b"\n")
            self.wfile.flush()
        time.sleep(1)

    def log_message(self, *args):
        pass


def _value(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def gateway():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Gateway.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_leader_key_watch_sees_it_released_then_taken(gateway):
    _Gateway.events = [(0.2, {"type": "DELETE", "kv": {"key": _value("/db/pg/leader")}}),
                       (0.2, {"kv": {"key": _value("/db/pg/leader"), "value": _value("postgres02")}})]
    watch = timeline.LeaderKeyWatch(lock.Etcd([gateway]), "/db/pg/leader", "postgres01")
    started = time.time()
    watch.start()
    assert watch.ready.wait(5)
    watch.join(5)
    assert watch.error is None
    assert started + 0.15 < watch.released < watch.taken and watch.holder == "postgres02"
    assert _Gateway.requests == [("/v3/watch", {"create_request": {"key": _value("/db/pg/leader")}})]


def test_a_key_rewritten_by_the_same_leader_is_not_a_change_and_a_takeover_without_delete_is_both(gateway):
    _Gateway.events = [(0.1, {"kv": {"value": _value("postgres01")}}),  # the leader's own refresh
                       (0.1, {"kv": {"value": _value("postgres03")}})]
    watch = timeline.LeaderKeyWatch(lock.Etcd([gateway]), "/db/pg/leader", "postgres01")
    watch.start()
    watch.join(5)
    assert watch.holder == "postgres03" and watch.released == watch.taken


def test_a_watch_that_cannot_start_says_why():
    watch = timeline.LeaderKeyWatch(lock.Etcd(["http://127.0.0.1:9"]), "/db/pg/leader", "postgres01")
    watch.start()
    assert watch.ready.wait(5)
    watch.join(5)
    assert watch.released is None and "127.0.0.1:9" in watch.error


def test_a_replica_the_master_cannot_reach_is_given_up_and_said():
    """pg_hba refusing the master, or no route: one attempt, then a note; never a connection attempt every 50 ms."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    replica = timeline.Replica("postgres02", f"host=127.0.0.1 port={port} user=x dbname=pgha")
    replica.start()
    replica.join(5)
    assert not replica.is_alive() and replica.promoted is None
    assert replica.error.startswith("not reachable directly: ") and str(port) in replica.error
