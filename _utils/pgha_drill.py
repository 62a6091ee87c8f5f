"""
The engine of pgha's failover drill: a writer commits numbered rows through
HAProxy while a fault is injected and undone, the cluster is watched
(promotion, HAProxy's switch, the first write on the new leader, a new
synchronous standby, the rejoin), every acknowledged row is read back, and
the outcome is measured and judged.

The engine does not know which fault runs: a fault unit
(``_utils/pgha_faults.py``) plans it on the cluster it finds, injects it,
says how long to hold it and undoes it. The runner hands ``run`` the
cluster as it reaches it (``pgha_reach.Reach``), the unit and the drill's
``Options`` (its bound, the probe role's connection, where the report goes,
the unit's own settings). Rows go to the formula's own database only
(``pgha``, table ``pgha_drill``), deleted once read back. Needs psycopg.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg
from salt.exceptions import CommandExecutionError

POLL = 0.2
# While a fault that moves no leader is held (etcd down, a standby lost): a look a second, not five; each look
# is three requests to Patroni's REST API (over TLS), and a loaded member slow to answer a failsafe call demotes.
HOLD_POLL = 1.0
SETTLE_S = 2.0
# The numbers of the rows written straight to the old leader (the partition modes), apart from the writer's.
OLD_LEADER_SEQ = 1_000_000_001
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS pgha_drill (run text NOT NULL, seq bigint NOT NULL, "
    "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, seq))"
)


class Options(NamedTuple):
    """
    A drill's settings: ``timeout``, the bound of every wait (s); ``dsn``, the
    probe role's connection through the client path (HAProxy's leader port or
    the pooler); ``report_dir``, where the JSON report and the picture go
    (None: none); the units' own: ``candidate`` (switchover), ``member``
    (etcd-member-loss), ``freeze_s``, ``outage_s``, ``partition_s``; ``path``, the client path.
    """
    timeout: float
    dsn: str
    report_dir: str | None
    candidate: str | None
    member: str | None
    freeze_s: float
    outage_s: float
    path: str
    partition_s: float = 30.0


# ---------------------------------------------------------------------------
# the writer
# ---------------------------------------------------------------------------


class Writer(threading.Thread):
    """
    Inserts numbered rows, one transaction each, recording every attempt:
    when it was sent, when it was acknowledged (and by which server) or
    when and why it failed. A connection attempt is given up after
    ``connect_timeout`` seconds (libpq's own connect_timeout cannot go below
    2 s): while HAProxy has no server for it, a new connection waits, and
    the writer tries again at once. An INSERT sent is never abandoned by the
    client (no write left in doubt by us).
    """

    def __init__(self, dsn: str, run: str, pause: float = 0.02, connect_timeout: float = 0.5, first_seq: int = 1):
        super().__init__(daemon=True, name="pgha-drill-writer")
        self.dsn, self.run_id, self.pause, self.connect_timeout = dsn, run, pause, connect_timeout
        self.first_seq = first_seq
        self.records: list[dict] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._write())

    async def _write(self) -> None:
        conn = None
        seq = self.first_seq - 1
        while not self.stopping.is_set():
            seq += 1
            record = {"seq": seq, "sent": time.time(), "acked": None, "server": None, "error": None, "ended": None}
            try:
                if conn is None:
                    # never a server-side prepared statement (psycopg prepares a query run five times): behind
                    # PgBouncer's transaction pooling the next transaction may be on another server connection
                    conn = await asyncio.wait_for(
                        psycopg.AsyncConnection.connect(self.dsn, autocommit=True, prepare_threshold=None),
                        self.connect_timeout,
                    )
                cursor = await conn.execute(
                    "INSERT INTO pgha_drill (run, seq) VALUES (%s, %s) RETURNING host(inet_server_addr())",
                    (self.run_id, seq),
                )
                row = await cursor.fetchone()
                record["acked"] = record["ended"] = time.time()
                record["server"] = row[0]
            except (psycopg.Error, OSError, TimeoutError) as exc:
                record["ended"] = time.time()
                record["error"] = "ConnectTimeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                record["detail"] = (str(exc).strip().splitlines() or [""])[0][:200]
                conn = await _close(conn)
                await asyncio.sleep(0.05)
            self.records.append(record)
            await asyncio.sleep(self.pause)
        await _close(conn)


async def _close(conn) -> None:
    if conn is not None:
        try:
            await conn.close()
        except psycopg.Error:
            pass


# ---------------------------------------------------------------------------
# probes: the formula's own database, the probe role
# ---------------------------------------------------------------------------


def probe_dsn(cluster: Any, path: str = "leader", connect_timeout: int = 2) -> str:
    """
    The probe role's connection to the formula's database (a ``pgha_model.Cluster``'s), through HAProxy's
    leader port, or (``path="pooler"``) through PgBouncer in front of it.
    """
    return psycopg.conninfo.make_conninfo(
        host=cluster.haproxy.write_address,
        port=cluster.pooler.port if path == "pooler" else cluster.haproxy.port,
        user=cluster.users["probe"],
        password=cluster.secrets.get("probe_password"),
        dbname=cluster.probe_database,
        connect_timeout=connect_timeout,
        application_name="pgha",
    )


def direct_dsn(dsn: str, address: str, port: int) -> str:
    """The same connection, to one server directly (not through HAProxy): a client beside a cut-off leader."""
    return psycopg.conninfo.make_conninfo(dsn, host=address, port=port)


def options(cluster: Any, given: dict) -> Options:
    """A drill's ``Options`` from the checked arguments (``pgha_args.drill_options``) and the cluster's model."""
    return Options(dsn=probe_dsn(cluster, given["path"]),
                   report_dir=cluster.drill.report_dir if given.get("report", True) else None,
                   **{name: given[name] for name in ("timeout", "candidate", "member", "freeze_s", "outage_s", "path",
                                                     "partition_s") if name in given})


# ---------------------------------------------------------------------------
# measures
# ---------------------------------------------------------------------------


def _longest_gap(times: list[float], start: float) -> float | None:
    """The longest interval between consecutive times, counting from the last one before ``start``."""
    before = [t for t in times if t < start]
    after = [t for t in times if t >= start]
    series = ([before[-1]] if before else []) + after
    gaps = [b - a for a, b in itertools.pairwise(series)]
    return round(max(gaps), 3) if gaps else None


def analyse(records: list[dict], fault_at: float, old_address: str | None, new_address: str | None,
            present: set[int]) -> dict:
    """
    Measures of a drill from the writer's records (pure).

    - ``rto_s``: fault to the first write acknowledged by the new leader (None without one).
    - ``write_gap_s``: the longest interval without an acknowledgement, from the last one before the fault.
    - ``acked``, ``lost`` (acknowledged, absent at the end), ``lost_seqs`` (the first 50),
      ``in_doubt`` (failed attempts whose row is there anyway: committed, acknowledgement lost).
    - ``failed_writes``: attempts that errored; ``unavailable_s``: first failed attempt to the end of the last.
    - ``client_stall_s``: the longest any attempt waited (sent to acknowledged or failed), from the fault on.
    - ``acked_on_old_after_promotion``: acknowledgements by the old leader while the new one was
      acknowledging too (two writable primaries at once: must be 0).
    - ``errors``: the failed attempts by what failed them (kind: first line of the message), five at most.
    """
    records = sorted(records, key=lambda r: r["sent"])
    acked = [r for r in records if r["acked"] is not None]
    failed = [r for r in records if r["acked"] is None]
    on_new = sorted(r["acked"] for r in acked if new_address and new_address != old_address
                    and r["server"] == new_address and r["acked"] >= fault_at)
    overlap = [r for r in acked if on_new and r["server"] == old_address and on_new[0] < r["acked"] < on_new[-1]]
    waits = [(r["ended"] or r["sent"]) - r["sent"] for r in records if (r["ended"] or r["sent"]) >= fault_at]
    lost = sorted(r["seq"] for r in acked if r["seq"] not in present)
    return {
        "rto_s": round(on_new[0] - fault_at, 3) if on_new else None,
        "write_gap_s": _longest_gap(sorted(r["acked"] for r in acked), fault_at),
        "attempts": len(records),
        "acked": len(acked),
        "lost": len(lost),
        "lost_seqs": lost[:50],
        "in_doubt": len({r["seq"] for r in failed} & present),
        "failed_writes": len(failed),
        "unavailable_s": round((failed[-1]["ended"] or failed[-1]["sent"]) - failed[0]["sent"], 3) if failed else None,
        "client_stall_s": round(max(waits), 3) if waits else None,
        "acked_on_old_after_promotion": len(overlap),
        "errors": _errors(failed),
    }


def analyse_old_leader(records: list[dict], fault_at: float, promoted_at: float | None, present: set[int]) -> dict:
    """
    Measures of the writes made straight to the old leader, from a client that still reaches it while
    it is cut off from the others (pure): ``old_leader_writable_s``, fault to its last acknowledgement
    (0 when none came after the fault); ``old_leader_acked``; ``old_leader_lost`` (acknowledged, absent
    at the end); ``old_leader_acked_after_promotion`` (acknowledged once another member was promoted).
    """
    acked = [r for r in records if r["acked"] is not None]
    after = [r["acked"] for r in acked if r["acked"] >= fault_at]
    return {
        "old_leader_writable_s": round(max(after) - fault_at, 3) if after else 0.0,
        "old_leader_acked": len(acked),
        "old_leader_lost": sum(1 for r in acked if r["seq"] not in present),
        "old_leader_acked_after_promotion": sum(1 for r in acked if promoted_at and r["acked"] > promoted_at),
        "old_leader_errors": _errors([r for r in records if r["acked"] is None], 3),
    }


def _errors(failed: list[dict], most: int = 5) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in failed:
        key = f"{record['error']}: {record.get('detail') or ''}".rstrip(": ")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:most])


# ---------------------------------------------------------------------------
# watching the cluster
# ---------------------------------------------------------------------------


class _Watch:
    """The events of a drill, by wall-clock time, as they are seen."""

    def __init__(self, reach: Any, writer: Writer, old_leader: str, sync_before: set, first: list[str] | None = None):
        self.reach, self.writer, self.old_leader, self.sync_before = reach, writer, old_leader, sync_before
        # whom to ask first: in a partition, the members on the side that keeps etcd (a cut-off one answers
        # from its own stale view)
        self.first = first
        self.marks: dict = {}
        self.new_leader: str | None = None
        self.members: list[dict] = []

    def look(self) -> None:
        """One look at the cluster and HAProxy; marks what happened since the last."""
        now = time.time()
        self.members = self.reach.members(self.first) if self.first else self.reach.members()
        lead = self.reach.rules.leader_of(self.members)
        if lead and lead["name"] != self.old_leader and not self.new_leader:
            self.new_leader = lead["name"]
            self.marks["promotion"] = now
        syncs = {m["name"] for m in self.members if m["role"] in ("sync_standby", "quorum_standby")}
        if "sync_switch" not in self.marks and syncs - self.sync_before:
            self.marks["sync_switch"] = now
        if self.new_leader and "haproxy_switch" not in self.marks:
            servers = _safe(self.reach.haproxy)
            if str(servers.get(self.new_leader)).startswith("UP") and not str(servers.get(self.old_leader)).startswith("UP"):
                self.marks["haproxy_switch"] = now
        new_address = self.reach.cluster.address(self.new_leader)
        if new_address and any(r["server"] == new_address and r["acked"] for r in self.writer.records[-50:]):
            self.marks.setdefault("first_write", now)

    def until(self, done: Callable[[], bool], deadline: float, poll: float | None = None) -> bool:
        """Look until ``done()`` or the deadline (monotonic), every ``poll`` s; whether it was done."""
        while True:
            self.look()
            if done():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL if poll is None else poll)


# ---------------------------------------------------------------------------
# the drill
# ---------------------------------------------------------------------------


def _refused(mode: str, text: str) -> dict:
    return {"mode": mode, "ok": False, "comment": text, "problems": [text], "restored": []}


def run(reach: Any, fault: Any, options: Options, timeline: Callable[..., Any] | None = None) -> tuple[dict, list[dict]]:
    """
    One drill of ``fault`` (a unit of ``pgha_faults``) on the cluster
    ``reach`` reaches. Returns the report (see the runner's
    ``failover_drill``) and the writer's records (``pgha_report`` writes
    both down); the fault is always undone once injected, whatever fails
    after. ``timeline(reach, options, leader, members, moves_leader)``:
    observers of the phases (``pgha_timeline.Timeline``), started before the fault.
    """
    before = reach.members()
    lead = reach.rules.leader_of(before)
    if not lead:
        return _refused(fault.mode, "no running leader before the drill: nothing to drill"), []
    try:
        plan = fault.plan(reach, options, before, lead)
    except ValueError as exc:
        return _refused(fault.mode, str(exc)), []
    run_id = f"{fault.mode}-{uuid.uuid4().hex[:12]}"
    with psycopg.connect(options.dsn, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
    writer = Writer(options.dsn, run_id)
    writer.start()
    time.sleep(SETTLE_S)
    sync_before = {m["name"] for m in before if m["role"] in ("sync_standby", "quorum_standby")}
    watch = _Watch(reach, writer, lead["name"], sync_before, plan.get("ask_first"))
    # a client beside the old leader (the partition modes): writes straight to it, in the same run
    beside = Writer(direct_dsn(options.dsn, reach.cluster.address(lead["name"]), plan["writes_to"]), run_id,
                    first_seq=OLD_LEADER_SEQ) if plan.get("writes_to") else None
    result = {"mode": fault.mode, "old_leader": lead["name"], "timeline_before": lead["timeline"],
              "haproxy_before": _safe(reach.haproxy), "synchronous_mode": _synchronous(reach), "problems": [],
              "restored": [], **plan.get("report", {})}
    observers = timeline(reach, options, lead, before, fault.moves_leader) if timeline else None
    if observers:
        observers.start()
    if beside:
        beside.start()
    try:
        _inject_and_hold(reach, fault, options, plan, watch, result)
    finally:
        if beside:  # writes straight to the old leader only while it is cut off
            beside.stopping.set()
        _restore(reach, fault, options, plan, watch, result)
    _recover(reach, options, plan, watch, result)
    if observers:
        observers.stop()
        seen = observers.report(watch.marks["fault"], watch.new_leader, writer.records)
        watch.marks.update(seen.pop("marks"))
        result.update(seen)
    time.sleep(1.0)
    writer.stopping.set()
    writer.join(10)
    if beside:
        beside.join(options.timeout)  # an INSERT sent is never abandoned: it ends when the server answers
    present = _read_back(options.dsn, run_id, result)
    _conclude(reach, fault, watch, writer, present, result, beside.records if beside else None)
    return result, writer.records


def _inject_and_hold(reach: Any, fault: Any, options: Options, plan: dict, watch: _Watch, result: dict) -> None:
    """Inject the fault (in a thread: it may block) and watch until the fault unit's hold is over."""
    done: dict = {}

    def inject() -> None:
        try:
            done.update(fault.inject(reach, options, plan) or {})
            done["returned"] = True
        except CommandExecutionError as exc:
            done["error"] = str(exc)

    watch.marks["dispatch"] = watch.marks["fault"] = time.time()
    thread = threading.Thread(target=inject, daemon=True)
    thread.start()
    hold_s = float(plan.get("hold_s") or 0)
    waits_for = set(plan.get("until") or ())
    started = time.monotonic()

    def held() -> bool:
        return "error" in done or (time.monotonic() - started >= hold_s and waits_for <= watch.marks.keys())

    watch.until(held, started + hold_s + options.timeout, POLL if fault.moves_leader else HOLD_POLL)
    thread.join(options.timeout)
    if "error" in done:
        result["problems"].append(done["error"])
    elif thread.is_alive():
        result["problems"].append(f"injecting {fault.mode} did not finish within {options.timeout:.0f} s")
    result.update(done.get("report") or {})  # what the unit measured while injecting
    # The fault's own moment as the target's host saw it, rather than when Salt was asked to deliver it.
    on_host = done.get("at")
    if isinstance(on_host, (int, float)) and watch.marks["dispatch"] <= on_host <= time.time():
        watch.marks["fault"] = on_host
    missing = sorted(waits_for - watch.marks.keys())
    if missing and "error" not in done:
        result["problems"].append(f"not seen within {options.timeout:.0f} s of the fault: {', '.join(missing)}")


def _restore(reach: Any, fault: Any, options: Options, plan: dict, watch: _Watch, result: dict) -> None:
    """Undo the fault, whatever happened; say what was restored."""
    watch.marks["restore"] = time.time()
    try:
        restored = fault.restore(reach, options, plan)
    except CommandExecutionError as exc:
        result["problems"].append(f"undoing {fault.mode} failed: {exc}")
        return
    if isinstance(restored, dict):  # what was restored, and what the unit measured doing it
        result.update(restored.get("report") or {})
        restored = restored.get("restored")
    result["restored"].extend(restored or [])


def _recover(reach: Any, options: Options, plan: dict, watch: _Watch, result: dict) -> None:
    """Wait until the cluster is healthy again: one leader, every member streaming on its timeline, lag 0."""
    expected = len(reach.cluster.pg_nodes)
    target = plan.get("target")
    problems: list[str] = []

    def healthy() -> bool:
        nonlocal problems
        problems = reach.rules.health_problems(watch.members, expected, 0)
        lead = reach.rules.leader_of(watch.members)
        if lead and target and "rejoin" not in watch.marks:
            member = next((m for m in watch.members if m["name"] == target), None)
            if member and (member is lead or not reach.rules.follower_problems(member, lead, 0)):
                watch.marks["rejoin"] = time.time()
        return not problems

    if watch.until(healthy, time.monotonic() + options.timeout):
        watch.marks.setdefault("rejoin", time.time())
    else:
        result["problems"].append(
            f"the cluster was not healthy within {options.timeout:.0f} s of undoing the fault: " + "; ".join(problems)
        )


def _read_back(dsn: str, run_id: str, result: dict) -> set[int]:
    """The rows of this run that are there at the end (then deleted: the drill keeps nothing)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            present = {row[0] for row in conn.execute("SELECT seq FROM pgha_drill WHERE run = %s", (run_id,))}
            conn.execute("DELETE FROM pgha_drill WHERE run = %s", (run_id,))
            return present
    except psycopg.Error as exc:
        result["problems"].append(f"cannot read the written rows back: {str(exc).strip()}")
        return set()


def _since(marks: dict, name: str, start: str = "fault") -> float | None:
    return round(marks[name] - marks[start], 3) if name in marks and start in marks else None


def _conclude(reach: Any, fault: Any, watch: _Watch, writer: Writer, present: set[int], result: dict,
              beside: list[dict] | None = None) -> None:
    """Measures, the cluster after, and the verdict."""
    marks, final = watch.marks, watch.members
    lead = reach.rules.leader_of(final)
    address = reach.cluster.address
    measures = analyse(writer.records, marks["fault"], address(result["old_leader"]), address(watch.new_leader),
                       present)
    if beside is not None:  # what the old leader acknowledged straight to a client counts too
        old = analyse_old_leader(beside, marks["fault"], marks.get("promotion"), present)
        result.update(old)
        measures["lost"] += old["old_leader_lost"]
        measures["acked_on_old_after_promotion"] += old["old_leader_acked_after_promotion"]
    result.update(measures)
    result.update(
        new_leader=watch.new_leader,
        leader_after=lead["name"] if lead else None,
        timeline_after=lead["timeline"] if lead else None,
        promotion_s=_since(marks, "promotion"),
        haproxy_switch_s=_since(marks, "haproxy_switch"),
        sync_switch_s=_since(marks, "sync_switch"),
        fault_dispatch_s=round(marks["fault"] - marks["dispatch"], 3),
        rejoin_s=_since(marks, "rejoin", "restore" if fault.restores else "promotion"),
        replicas_streaming=sum(1 for m in final if lead and m is not lead and m["streaming"]
                               and m["timeline"] == lead["timeline"]),
        writer_connect_timeout_s=writer.connect_timeout,
        haproxy_after=_safe(reach.haproxy),
        members_after=final,
        marks=marks,
    )
    problems = result["problems"]
    if measures["lost"]:
        problems.append(f"{measures['lost']} acknowledged writes lost")
    if measures["acked_on_old_after_promotion"]:
        problems.append(f"{measures['acked_on_old_after_promotion']} writes acknowledged by the old leader "
                        "while the new leader was acknowledging too")
    problems.extend(fault.judge(reach, result))
    result["ok"] = not problems


def _synchronous(reach: Any) -> bool | None:
    """Whether the cluster runs in synchronous mode now (the DCS's dynamic configuration)."""
    try:
        return str(reach.api.any_member("/config")[1].get("synchronous_mode")).lower() in ("true", "on", "quorum")
    except (CommandExecutionError, AttributeError):
        return None


def _safe(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except CommandExecutionError as exc:
        return {"error": str(exc)}
