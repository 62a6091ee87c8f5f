"""
A drill's timeline, phase by phase: where the time between a fault and the
first write on the new leader goes. Each moment comes from its own
observation, watched from the master while the drill runs:

- ``old_refusing``: the old leader's PostgreSQL ends a session held open to
  it (polled every 50 ms) or refuses a new one;
- ``shutdown_checkpoint``: its shutdown checkpoint written (the "checkpoint
  complete" line after "shutting down" in its own log, read afterwards);
- ``old_stopped``: its postmaster gone (a connection refused at its port);
- ``leader_released`` and ``leader_taken``: the leader key deleted (or
  expired) and written by another member (a watch on the key in etcd);
- ``promote_requested``: "received promote request" in the new leader's log;
- ``promoted``: ``pg_is_in_recovery()`` false on the new leader (every
  replica polled every 50 ms);
- ``haproxy_up``: HAProxy's write listener with the new leader UP and the
  old one not (its stats page, every 50 ms);
- ``first_write_haproxy`` and ``first_write_pooler``: the first write the
  new leader acknowledged through each client path (the drill's writer on
  its own path, a probe writing one row every 50 ms on the other, the row
  deleted after).

``report`` gives ``timeline`` (each moment in seconds since the fault) and
``phases`` (each moment's distance from the one before it, in the order
above; a moment not seen is left out). Plain Python; the engine
(``pgha_drill.run``) starts it before the fault and reads it after.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import psycopg
from salt.exceptions import CommandExecutionError

POLL_S = 0.05
# In a fault that moves no leader (etcd away, a standby lost) the observers look once a second: no moment to time
# closely, and a failsafe leader must not be slowed by a hundred looks a second while it holds on.
HOLD_POLL_S = 1.0
PROBE_ROW = 2  # the write probe's row in pgha_check (row 1 is pgha.write_check's)
ORDER = ("old_refusing", "shutdown_checkpoint", "old_stopped", "leader_released", "leader_taken", "promote_requested",
         "promoted", "haproxy_up", "first_write_haproxy", "first_write_pooler")
# PostgreSQL's own log lines (log_line_prefix '%m [%p] '): the moments read from them, and the words marking them
PG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (UTC|GMT) \[\d+\] ")
SHUTTING_DOWN, CHECKPOINT_DONE, PROMOTE = "LOG:  shutting down", "LOG:  checkpoint complete", "received promote request"


def pg_time(line: str) -> float | None:
    """The epoch time of one of PostgreSQL's log lines (its prefix in UTC), or None."""
    found = PG_TIME.match(line)
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


def shutdown_checkpoint(lines: list[str], since: float) -> float | None:
    """When the first checkpoint completed after a shutdown began, both from ``since`` on (log lines)."""
    shutting = None
    for line in lines:
        at = pg_time(line)
        if at is None or at < since:
            continue
        if SHUTTING_DOWN in line:
            shutting = at
        elif CHECKPOINT_DONE in line and shutting is not None:
            return at
    return None


def first_after(lines: list[str], words: str, since: float) -> float | None:
    """The first line holding ``words`` from ``since`` on, by its time."""
    return next((at for at in map(pg_time, (line for line in lines if words in line)) if at and at >= since), None)


def phases(marks: dict, fault: float) -> tuple[dict, dict]:
    """
    (seconds since the fault, seconds since the moment before) of the
    moments of ``ORDER`` seen, in the order they happened (``ORDER`` between
    equal times): a moment out of the usual order shows where it fell.
    """
    seen = sorted(((name, marks[name]) for name in ORDER if marks.get(name)),
                  key=lambda item: (item[1], ORDER.index(item[0])))
    since_fault = {name: round(at - fault, 3) for name, at in seen}
    steps, before = {}, fault
    for name, at in seen:
        steps[name] = round(at - before, 3)
        before = at
    return since_fault, steps


def first_on(records: list[dict], address: str | None, fault: float) -> float | None:
    """The first acknowledgement by the server at ``address`` after the fault, among a writer's records."""
    times = [r["acked"] for r in records if address and r["acked"] and r["server"] == address and r["acked"] >= fault]
    return min(times) if times else None


class _Loop(threading.Thread):
    """
    A daemon thread calling ``step()`` every POLL_S until stopped or
    ``step()`` says it is done; ``conn``, its own connection to PostgreSQL
    if it keeps one, is closed by this thread as it ends (psycopg's
    connections are not shared between threads).
    """

    def __init__(self, name: str, poll: float = POLL_S):
        super().__init__(daemon=True, name=f"pgha-timeline-{name}")
        self.poll = poll
        self.stopping = threading.Event()
        self.error: str | None = None
        self.conn: Any = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    if self.step():
                        return
                except Exception as exc:  # noqa: BLE001  # an observer never fails the drill: it says what it missed
                    self.error = f"{type(exc).__name__}: {exc}"
                self.stopping.wait(self.poll)
        finally:
            self.reconnect()

    def step(self) -> bool:
        raise NotImplementedError

    def reconnect(self) -> None:
        """Its connection closed (a new one at the next step, where a step makes one)."""
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
        self.conn = None

    def stop(self) -> None:
        self.stopping.set()


class OldLeader(_Loop):
    """The old leader's PostgreSQL: a held session's end (``refusing``), then a refused connection (``stopped``)."""

    def __init__(self, dsn: str, poll: float = POLL_S):
        super().__init__("old-leader", poll)
        self.dsn = dsn
        self.refusing: float | None = None
        self.stopped: float | None = None
        self.conn = psycopg.connect(dsn, autocommit=True)  # before the fault: it must be serving

    def step(self) -> bool:
        if self.refusing is None:
            try:
                self.conn.execute("SELECT 1")
                return False
            except psycopg.Error:
                self.refusing = time.time()
        try:
            psycopg.connect(self.dsn, autocommit=True, connect_timeout=2).close()
        except psycopg.OperationalError as exc:
            if "refused" in str(exc).lower():
                self.stopped = time.time()
                return True
            return False  # "the database system is shutting down": its postmaster still there
        return True  # serving again (restarted) without being seen gone


class Replica(_Loop):
    """
    A replica's PostgreSQL: the first moment ``pg_is_in_recovery()`` is false
    (its promotion done). One that cannot be reached from the master at all
    (pg_hba) is given up, said in ``error``; a lost connection is made again
    every half second, not every look.
    """

    RETRY_S = 0.5

    def __init__(self, name: str, dsn: str, poll: float = POLL_S):
        super().__init__(f"replica-{name}", poll)
        self.member, self.dsn = name, dsn
        self.promoted: float | None = None
        self.reached = False

    def step(self) -> bool:
        try:
            if self.conn is None:
                self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                self.reached = True
            if not self.conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                self.promoted = time.time()
                return True
        except psycopg.Error as exc:
            self.reconnect()
            if not self.reached:
                self.error = f"not reachable directly: {(str(exc).strip().splitlines() or [''])[0]}"
                return True
            self.stopping.wait(self.RETRY_S)
        return False


class HAProxyWatch(_Loop):
    """The write listener's servers: the first moment each server other than the old leader was seen UP."""

    def __init__(self, haproxy: Any, old_leader: str, poll: float = POLL_S):
        super().__init__("haproxy", poll)
        self.haproxy, self.old = haproxy, old_leader
        self.first_up: dict[str, float] = {}

    def step(self) -> bool:
        now = time.time()
        for name, state in self.haproxy().items():
            if name != self.old and str(state).startswith("UP"):
                self.first_up.setdefault(name, now)
        return bool(self.first_up)


class WriteProbe(_Loop):
    """
    One row (``pgha_check`` id ``PROBE_ROW``, beside the write check's row 1)
    written every POLL_S through a client path; every acknowledgement kept.
    The ``Timeline`` deletes the row once the drill is over.
    """

    def __init__(self, path: str, dsn: str, poll: float = POLL_S):
        super().__init__(f"write-{path}", poll)
        self.dsn = dsn
        self.records: list[dict] = []

    def step(self) -> bool:
        try:
            if self.conn is None:
                self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=2, prepare_threshold=None)
            server = self.conn.execute(
                f"INSERT INTO pgha_check VALUES ({PROBE_ROW}, now()) ON CONFLICT (id) DO UPDATE SET at = now() "
                "RETURNING host(inet_server_addr())").fetchone()[0]
            self.records.append({"acked": time.time(), "server": server})
        except psycopg.Error:
            self.reconnect()
        return False


class LeaderKeyWatch(threading.Thread):
    """
    A watch on the leader key through etcd's JSON gateway: when it was
    deleted (or its lease expired) and when another member wrote it.
    """

    def __init__(self, etcd: Any, key: str, old_leader: str):
        super().__init__(daemon=True, name="pgha-timeline-etcd")
        self.etcd, self.key, self.old = etcd, key, old_leader
        self.released: float | None = None
        self.taken: float | None = None
        self.holder: str | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.sock: socket.socket | None = None
        self.stopping = False

    def _open(self) -> http.client.HTTPResponse:
        problems = []
        for endpoint in self.etcd.endpoints:
            url = urllib.parse.urlsplit(endpoint)
            try:
                if self.etcd.logins:
                    self.etcd.login(endpoint)
                if url.scheme == "https":
                    conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=5,
                                                       context=self.etcd.context(endpoint))
                else:
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
                conn.connect()
                # the stream is read as long as it lasts; stop() shuts this socket down to end it
                self.sock = conn.sock
                self.sock.settimeout(None)
                body = {"create_request": {"key": base64.b64encode(self.key.encode()).decode()}}
                conn.request("POST", "/v3/watch", json.dumps(body), self.etcd.headers())
                answer = conn.getresponse()
                if answer.status != 200:
                    raise OSError(f"watch answered {answer.status}")
                return answer
            except (OSError, CommandExecutionError) as exc:
                problems.append(f"{endpoint}: {exc}")
        raise OSError("; ".join(problems))

    def run(self) -> None:
        try:
            answer = self._open()
            for raw in answer:
                event_time = time.time()
                result = (json.loads(raw) if raw.strip() else {}).get("result") or {}
                if result.get("created"):
                    self.ready.set()
                for event in result.get("events") or []:
                    self._event(event, event_time)
                if self.taken:
                    return
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if not self.stopping:  # not the end stop() made
                self.error = self.error or f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    def _event(self, event: dict, at: float) -> None:
        if event.get("type") == "DELETE":
            self.released = self.released or at
            return
        value = base64.b64decode((event.get("kv") or {}).get("value") or "").decode(errors="replace")
        if value and value != self.old:
            self.released = self.released or at  # taken over without a delete seen (a compare-and-swap)
            self.taken, self.holder = at, value

    def stop(self) -> None:
        self.stopping = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Timeline:
    """
    The observers of one drill (see the module): ``start()`` before the
    fault, ``stop()`` once the cluster is healthy again, ``report(...)``
    after. An observer that cannot start or fails says so in
    ``timeline_notes``; its moments are then missing, never invented.
    """

    def __init__(self, reach: Any, options: Any, leader: dict, members: list[dict], moves_leader: bool = True):
        cluster = reach.cluster
        poll = POLL_S if moves_leader else HOLD_POLL_S
        self.reach, self.options, self.old = reach, options, leader["name"]
        self.notes: list[str] = []
        port = cluster.settings["postgresql"]["port"]

        def direct(name: str) -> str:
            return psycopg.conninfo.make_conninfo(options.dsn, host=cluster.address(name), port=port,
                                                  connect_timeout=2)

        self.old_leader: OldLeader | None = None
        try:
            self.old_leader = OldLeader(direct(self.old), poll)
        except psycopg.Error as exc:
            self.notes.append(f"old leader {self.old} not reachable directly: {str(exc).strip()}")
        self.replicas = [Replica(m["name"], direct(m["name"]), poll) for m in members if m["name"] != self.old]
        self.haproxy = HAProxyWatch(reach.haproxy, self.old, poll)
        self.other_path = "haproxy" if options.path == "pooler" else "pooler"
        self.probe = WriteProbe(self.other_path, psycopg.conninfo.make_conninfo(
            options.dsn, port=cluster.haproxy.port if self.other_path == "haproxy" else cluster.pooler.port), poll) \
            if cluster.pooler.enabled else None
        self.key = LeaderKeyWatch(reach.etcd("root"), cluster.etcd.prefix + "leader", self.old)

    def observers(self) -> list:
        return [o for o in (self.old_leader, *self.replicas, self.haproxy, self.probe, self.key) if o is not None]

    def start(self) -> None:
        with psycopg.connect(self.options.dsn, autocommit=True) as conn:  # the write probe's table
            conn.execute("CREATE TABLE IF NOT EXISTS pgha_check (id int PRIMARY KEY, at timestamptz NOT NULL)")
        for observer in self.observers():
            observer.start()
        if not self.key.ready.wait(5) or self.key.error:
            self.notes.append(f"the watch on the leader key did not start: {self.key.error or 'no answer in 5 s'}")

    def stop(self) -> None:
        for observer in self.observers():
            observer.stop()
        for observer in self.observers():
            observer.join(3)
        if self.probe is not None:  # the probe's row goes, as the drill's rows do
            try:
                with psycopg.connect(self.options.dsn, autocommit=True) as conn:
                    conn.execute(f"DELETE FROM pgha_check WHERE id = {PROBE_ROW}")
            except psycopg.Error as exc:
                self.notes.append(f"the write probe's row (pgha_check id {PROBE_ROW}) not deleted: {str(exc).strip()}")

    def _logs(self, minion: str, words: list[str], since: float) -> list[str]:
        try:
            return self.reach.call(minion, "pgha_service.log_lines", "patroni", words, since=since - 5, wait=30) or []
        except CommandExecutionError as exc:
            self.notes.append(f"the log of {minion} unreadable: {exc}")
            return []

    def report(self, fault: float, new_leader: str | None, path_records: list[dict]) -> dict:
        """``timeline``, ``phases``, ``timeline_notes``; the moments also as marks (``marks``) for the picture."""
        marks: dict[str, float | None] = {}
        if self.old_leader is not None:
            marks.update(old_refusing=self.old_leader.refusing, old_stopped=self.old_leader.stopped)
        old_log = self._logs(self.old, [SHUTTING_DOWN, CHECKPOINT_DONE], fault)
        marks["shutdown_checkpoint"] = shutdown_checkpoint(old_log, fault)
        marks.update(leader_released=self.key.released, leader_taken=self.key.taken)
        new = new_leader or self.key.holder
        if new:
            marks["promote_requested"] = first_after(self._logs(new, [PROMOTE], fault), PROMOTE, fault)
            marks["promoted"] = next((r.promoted for r in self.replicas if r.member == new), None)
        marks["haproxy_up"] = self.haproxy.first_up.get(new) if new else None
        address = self.reach.cluster.address(new) if new else None
        marks[f"first_write_{'pooler' if self.options.path == 'pooler' else 'haproxy'}"] = \
            first_on(path_records, address, fault)
        if self.probe is not None:
            marks[f"first_write_{self.other_path}"] = first_on(self.probe.records, address, fault)
        for observer in self.observers():
            if observer.error:
                self.notes.append(f"{observer.name}: {observer.error}")
        marks = {name: at for name, at in marks.items() if at and at >= fault}
        since_fault, steps = phases(marks, fault)
        return {"timeline": since_fault, "phases": steps, "timeline_notes": self.notes, "marks": marks}


def timeline(reach: Any, options: Any, leader: dict, members: list[dict], moves_leader: bool = True) -> Timeline:
    """A ``Timeline`` of one drill (see the class); ``moves_leader`` False: looks once a second."""
    return Timeline(reach, options, leader, members, moves_leader)
