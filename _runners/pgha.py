"""
The pgha runner: checks and drills that need the whole cluster at once, run
on the Salt master.

``pgha.write_check`` proves that a write through HAProxy lands on the Patroni
leader; ``pgha.failover_drill`` takes the leader away (stop, crash or
switchover) while a writer commits numbered rows through HAProxy, and
measures recovery time, lost acknowledged writes and the old leader's rejoin.
The cluster's layout comes from the minions (``pgha_config.mapdata``), the
passwords from the master's own pillar; the runner connects to HAProxy's
write port and stats page and to the Patroni REST APIs. Needs psycopg on the
master (matplotlib, optional, draws the drill's timeline).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import salt.client
from salt.exceptions import CommandExecutionError

try:
    import psycopg

    HAS_PSYCOPG = True
except ImportError:
    HAS_PSYCOPG = False

log = logging.getLogger(__name__)

__virtualname__ = "pgha"

DRILL_MODES = ("stop", "crash", "switchover")
HTTP_TIMEOUT = 2.0
POLL = 0.2


def __virtual__():
    if not HAS_PSYCOPG:
        return (False, "pgha runner: psycopg is not installed in the master's Python")
    return __virtualname__


# ---------------------------------------------------------------------------
# talking to the cluster
# ---------------------------------------------------------------------------


def _call(tgt: str, fun: str, *args: Any, timeout: int = 60, **kwargs: Any) -> Any:
    """Run one execution function on one minion; raise with its message on failure."""
    with salt.client.get_local_client(__opts__["conf_file"]) as client:
        ret = client.cmd(tgt, fun, arg=list(args), kwarg=kwargs or None, timeout=timeout, full_return=True)
    if tgt not in ret:
        raise CommandExecutionError(f"pgha: minion {tgt} did not answer {fun} within {timeout} s")
    answer = ret[tgt]
    if not isinstance(answer, dict) or answer.get("retcode", 0) != 0:
        detail = answer.get("ret") if isinstance(answer, dict) else answer
        raise CommandExecutionError(f"pgha: {fun} on {tgt} failed: {detail}")
    return answer.get("ret")


def _pillar() -> dict:
    pillar = __salt__["pillar.show_pillar"]()
    cfg = pillar.get("pgha") if isinstance(pillar, dict) else None
    if not isinstance(cfg, dict) or not cfg.get("nodes"):
        raise CommandExecutionError("pgha: the master's pillar has no pgha:nodes; is the pillar top targeting '*'?")
    return cfg


def _topology() -> dict:
    """The cluster's map (from the first PostgreSQL node that answers) and secrets (master pillar)."""
    cfg = _pillar()
    candidates = sorted(n for n, node in cfg["nodes"].items() if "postgresql" in (node.get("roles") or []))
    problems = []
    for name in candidates:
        try:
            data = _call(name, "pgha_config.mapdata", timeout=30)
        except CommandExecutionError as exc:
            problems.append(str(exc))
            continue
        data["secrets"] = cfg.get("secrets", {})
        return data
    raise CommandExecutionError("pgha: no PostgreSQL node answered: " + "; ".join(problems))


def _http(url: str, auth: tuple[str, str] | None = None, timeout: float = HTTP_TIMEOUT,
          method: str = "GET", body: dict | None = None) -> tuple[int, str]:
    """One HTTP request; (status, text), status 0 when unreachable."""
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def _cluster_view(topo: dict) -> dict | None:
    """GET /cluster from the first member that answers, with the leader's replication list."""
    for name in topo["pg_nodes"]:
        status, text = _http(topo["restapi_urls"][name] + "/cluster")
        if status != 200:
            continue
        cluster = json.loads(text)
        leader = next(
            (m["name"] for m in cluster.get("members", []) if m.get("role") == "leader" and m.get("state") == "running"),
            None,
        )
        replication: list = []
        if leader:
            status, text = _http(topo["restapi_urls"][leader] + "/patroni")
            if status == 200:
                replication = json.loads(text).get("replication", [])
        return {"cluster": cluster, "leader": leader, "replication": replication}
    return None


def members_from_view(view: dict | None) -> list[dict]:
    """Members (name, role, state, timeline, lag, streaming) from a cluster view."""
    if not view:
        return []
    streaming = {e.get("application_name"): e.get("state") == "streaming" for e in view["replication"]}
    out = []
    for raw in view["cluster"].get("members", []):
        role = raw.get("role")
        out.append(
            {
                "name": raw.get("name"),
                "role": "leader" if role in ("leader", "standby_leader") else role,
                "state": raw.get("state"),
                "timeline": raw.get("timeline"),
                "lag": raw.get("lag") if isinstance(raw.get("lag"), int) else (
                    0 if role in ("leader", "standby_leader") else None
                ),
                "streaming": streaming.get(raw.get("name"), False),
            }
        )
    return sorted(out, key=lambda m: m["name"] or "")


def haproxy_servers(topo: dict) -> dict:
    """Each PostgreSQL backend server's state on HAProxy's stats page (UP, DOWN, ...)."""
    address = topo["haproxy"]["write_address"]
    stats_address = topo["haproxy"]["stats_bind_address"]
    host = address if stats_address in ("*", None) else stats_address
    auth = (topo["users"]["haproxy_stats"], topo["secrets"].get("haproxy_stats_password", ""))
    status, text = _http(f"http://{host}:{topo['haproxy']['stats_port']}/;csv", auth=auth)
    if status != 200:
        return {"error": f"stats page answered {status}"}
    return parse_haproxy_csv(text, "postgres")


def parse_haproxy_csv(text: str, proxy: str) -> dict:
    """Server name -> status from HAProxy's CSV statistics, for one proxy."""
    reader = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {
        row["svname"]: row["status"]
        for row in reader
        if row.get("pxname") == proxy and row.get("svname") not in ("FRONTEND", "BACKEND")
    }


def routes(state: Any) -> bool:
    """Whether HAProxy sends connections to a server in this state ('UP', or 'UP 1/3' while going down)."""
    return str(state).startswith("UP")


def _dsn(topo: dict, connect_timeout: int = 2) -> str:
    return psycopg.conninfo.make_conninfo(
        host=topo["haproxy"]["write_address"],
        port=topo["haproxy"]["port"],
        user=topo["users"]["superuser"],
        password=topo["secrets"].get("superuser_password", ""),
        dbname="postgres",
        connect_timeout=connect_timeout,
        application_name="pgha-drill",
    )


def _fail(result: dict) -> dict:
    """A failed result: the orchestration sees it (retcode in the context) and so does
    salt-run's exit code (``retcode`` in the returned data)."""
    __context__["retcode"] = 1
    result["retcode"] = 1
    return result


# ---------------------------------------------------------------------------
# write check
# ---------------------------------------------------------------------------


def write_check(timeout: int = 60) -> dict:
    """
    Check, waiting at most ``timeout`` seconds, that a write through HAProxy's
    write address commits on the Patroni leader. Exit code non-zero when not.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.write_check timeout=60
    """
    topo = _topology()
    deadline = time.monotonic() + float(timeout)
    started = time.monotonic()
    seen = "nothing yet"
    while time.monotonic() < deadline:
        view = _cluster_view(topo)
        leader = view["leader"] if view else None
        if leader:
            try:
                with psycopg.connect(_dsn(topo), autocommit=True) as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS pgha_check (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
                    server = conn.execute(
                        "INSERT INTO pgha_check DEFAULT VALUES RETURNING host(inet_server_addr())"
                    ).fetchone()[0]
                if server == topo["nodes"][leader]["address"]:
                    return {
                        "ok": True,
                        "leader": leader,
                        "server_address": server,
                        "elapsed_s": round(time.monotonic() - started, 2),
                    }
                seen = f"the write landed on {server}, the leader {leader} is {topo['nodes'][leader]['address']}"
            except psycopg.Error as exc:
                seen = f"write through HAProxy failed: {str(exc).strip()}"
        else:
            seen = "no running leader"
        time.sleep(1)
    return _fail({"ok": False, "comment": f"expected a write through HAProxy to land on the leader within {timeout} s; saw: {seen}"})


# ---------------------------------------------------------------------------
# the failover drill
# ---------------------------------------------------------------------------


class Writer(threading.Thread):
    """
    Inserts numbered rows through HAProxy, one transaction each, recording
    every outcome. A connection attempt is given up after ``connect_timeout``
    seconds (libpq's own connect_timeout cannot go below 2 s, which would
    measure the failover in 2 s steps): while HAProxy has no server to send
    it to, a new connection waits, and the writer tries again at once.
    """

    def __init__(self, dsn: str, run: str, pause: float = 0.02, connect_timeout: float = 0.5):
        super().__init__(daemon=True, name="pgha-drill-writer")
        self.dsn, self.run_id, self.pause, self.connect_timeout = dsn, run, pause, connect_timeout
        self.records: list[dict] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._write())

    async def _write(self) -> None:
        conn = None
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            record = {"seq": seq, "sent": time.time(), "acked": None, "server": None, "error": None}
            try:
                if conn is None:
                    conn = await asyncio.wait_for(
                        psycopg.AsyncConnection.connect(self.dsn, autocommit=True, options="-c statement_timeout=2000"),
                        self.connect_timeout,
                    )
                cursor = await conn.execute(
                    "INSERT INTO pgha_drill (run, seq) VALUES (%s, %s) RETURNING host(inet_server_addr())",
                    (self.run_id, seq),
                )
                row = await cursor.fetchone()
                record["acked"], record["server"] = time.time(), row[0]
            except (psycopg.Error, OSError, TimeoutError) as exc:
                # Only the connection attempt is timed out here: an INSERT sent
                # is never abandoned on the client side (no write left in doubt by us).
                record["error"] = "ConnectTimeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                if conn is not None:
                    try:
                        await conn.close()
                    except psycopg.Error:
                        pass
                conn = None
                await asyncio.sleep(0.05)
            self.records.append(record)
            await asyncio.sleep(self.pause)
        if conn is not None:
            await conn.close()


def analyse(records: list[dict], fault_at: float, new_address: str | None, old_address: str | None,
            present: set[int], promoted_at: float | None = None) -> dict:
    """
    Measures of a drill from the writer's records (pure: unit-tested).

    - ``rto_s``: fault to the first write acknowledged by the new leader.
    - ``write_gap_s``: last acknowledged write before that one to it.
    - ``acked``: writes acknowledged; ``lost``: acknowledged but absent at the end.
    - ``in_doubt``: failed writes that are present anyway (committed, ack lost).
    - ``acked_on_old_after_promotion``: acknowledgements by the old leader after
      the new one was promoted (two writable primaries at once: must be 0).
    """
    acked = [r for r in records if r["acked"] is not None]
    after = sorted(
        (r for r in acked if r["server"] == new_address and r["acked"] >= fault_at and new_address != old_address),
        key=lambda r: r["acked"],
    )
    first_new = after[0]["acked"] if after else None
    before = [r["acked"] for r in acked if first_new is None or r["acked"] < first_new]
    last_before = max(before) if before else None
    lost = sorted(r["seq"] for r in acked if r["seq"] not in present)
    failed = {r["seq"] for r in records if r["acked"] is None}
    split = [
        r["seq"] for r in acked
        if promoted_at is not None and r["server"] == old_address and r["acked"] > promoted_at
    ]
    return {
        "rto_s": round(first_new - fault_at, 3) if first_new is not None else None,
        "write_gap_s": round(first_new - last_before, 3) if first_new is not None and last_before is not None else None,
        "attempts": len(records),
        "acked": len(acked),
        "lost": len(lost),
        "lost_seqs": lost[:50],
        "in_doubt": len(failed & present),
        "acked_on_old_after_promotion": len(split),
    }


def _rejoined(members: list[dict], old_leader: str, new_leader: str) -> bool:
    by_name = {m["name"]: m for m in members}
    old, new = by_name.get(old_leader), by_name.get(new_leader)
    return bool(
        old and new and new["role"] == "leader" and old["role"] in ("replica", "sync_standby")
        and old["state"] in ("running", "streaming") and old["streaming"]
        and old["timeline"] == new["timeline"] and old["lag"] == 0
    )


def _draw(path: str, records: list[dict], marks: dict, title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    start = marks["fault"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    servers = sorted({r["server"] for r in records if r["server"]})
    series: dict = {s: ([], []) for s in servers}
    for count, record in enumerate(sorted((r for r in records if r["acked"]), key=lambda r: r["acked"]), start=1):
        series[record["server"]][0].append(record["acked"] - start)
        series[record["server"]][1].append(count)
    for server, (xs, ys) in series.items():
        ax.plot(xs, ys, ".", markersize=2, label=f"acknowledged on {server}")
    failures = [r["sent"] - start for r in records if r["acked"] is None]
    if failures:
        ax.plot(failures, [0] * len(failures), "|", color="red", label="failed attempt")
    styles = {"fault": "red", "promotion": "orange", "haproxy_switch": "green", "restart": "grey", "rejoin": "blue"}
    for name, color in styles.items():
        if marks.get(name):
            ax.axvline(marks[name] - start, color=color, linestyle="--", label=name)
    ax.set_xlabel("seconds since the fault")
    ax.set_ylabel("acknowledged writes")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _report_dir(topo: dict) -> str:
    path = topo["drill"]["report_dir"]
    os.makedirs(path, mode=0o750, exist_ok=True)
    return path


def failover_drill(mode: str = "stop", timeout: int | None = None, report: bool = True,
                   candidate: str | None = None) -> dict:
    """
    Take the leader away while a writer commits numbered rows through
    HAProxy, and measure: ``stop`` (the service manager stops Patroni, as
    ``systemctl stop patroni``), ``crash`` (SIGKILL to Patroni and the
    postmaster, no restart until the drill starts it again) or ``switchover``
    (planned, through Patroni). The old leader is started again and must
    stream from the new leader on the new timeline.

    Returns mode, old_leader, new_leader, timeline_before, timeline_after,
    rto_s, write_gap_s, acked, lost, rejoin_s, replicas_streaming,
    haproxy_before, haproxy_after and ok; the exit code is non-zero when ok
    is false (acknowledged writes lost, no new leader, HAProxy did not follow,
    or a member did not rejoin on the new timeline). A JSON report and a
    timeline picture are written under pillar ``pgha:drill:report_dir``.
    The writer gives a connection attempt 0.5 s (``writer_connect_timeout_s``)
    before trying again, so rto_s is measured to about half a second.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.failover_drill mode=stop
        salt-run pgha.failover_drill mode=crash --out=json
    """
    if mode not in DRILL_MODES:
        return _fail({"ok": False, "comment": f"pgha.failover_drill: mode must be one of {', '.join(DRILL_MODES)} (got {mode!r})"})
    topo = _topology()
    timeout = float(timeout or topo["drill"]["timeout"])
    view = _cluster_view(topo)
    before = members_from_view(view)
    old_leader = view["leader"] if view else None
    if not old_leader:
        return _fail({"mode": mode, "ok": False, "comment": "no running leader before the drill: nothing to drill"})
    if candidate and (candidate == old_leader or candidate not in topo["pg_nodes"]):
        return _fail({"mode": mode, "ok": False,
                      "comment": f"pgha: candidate {candidate!r} must be a PostgreSQL node other than the leader {old_leader}"})
    sync_standbys = [m["name"] for m in before if m["role"] == "sync_standby"]
    if candidate and sync_standbys and candidate not in sync_standbys:
        return _fail({"mode": mode, "ok": False, "comment": (
            f"pgha: in synchronous mode Patroni hands the leadership only to the synchronous standby "
            f"({', '.join(sync_standbys)}), not to {candidate}"
        )})
    timeline_before = next(m["timeline"] for m in before if m["name"] == old_leader)
    old_address = topo["nodes"][old_leader]["address"]
    haproxy_before = haproxy_servers(topo)

    run_id = f"{mode}-{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_dsn(topo), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS pgha_drill (run text NOT NULL, seq bigint NOT NULL, "
            "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, seq))"
        )
    writer = Writer(_dsn(topo), run_id)
    writer.start()
    time.sleep(2.0)

    marks: dict = {}
    problems: list[str] = []
    fault_error: list[str] = []

    fault_done: dict = {}

    def fault() -> None:
        try:
            if mode == "stop":
                answer = _call(old_leader, "pgha_service.stop", "patroni", timeout=int(timeout))
            elif mode == "crash":
                answer = _call(old_leader, "pgha_service.crash", "patroni", timeout=int(timeout))
            else:
                answer = _call(old_leader, "patroni.switchover", candidate=candidate, timeout=int(timeout))
        except CommandExecutionError as exc:
            fault_error.append(str(exc))
            return
        if isinstance(answer, dict):
            fault_done.update(answer)

    marks["dispatch"] = marks["fault"] = time.time()
    fault_thread = threading.Thread(target=fault, daemon=True)
    fault_thread.start()

    new_leader = None
    new_address = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not fault_error:
        now = time.time()
        view = _cluster_view(topo)
        if view and view["leader"] and view["leader"] != old_leader and not new_leader:
            new_leader = view["leader"]
            new_address = topo["nodes"][new_leader]["address"]
            marks["promotion"] = now
        if new_leader and "haproxy_switch" not in marks:
            servers = haproxy_servers(topo)
            if routes(servers.get(new_leader)) and not routes(servers.get(old_leader)):
                marks["haproxy_switch"] = now
        if new_leader and any(r["server"] == new_address and r["acked"] for r in writer.records[-50:]):
            marks.setdefault("first_write", now)
        if {"promotion", "haproxy_switch", "first_write"} <= marks.keys():
            break
        time.sleep(POLL)
    fault_thread.join(timeout)
    problems.extend(fault_error)
    # The fault's own moment, as the old leader's host saw it (stop issued,
    # postmaster killed, switchover requested), rather than when Salt was
    # asked to deliver it; the dispatch time when the host did not say.
    on_host = fault_done.get("stopping_at") or fault_done.get("killed_at") or fault_done.get("requested_at")
    if isinstance(on_host, (int, float)) and marks["dispatch"] <= on_host <= time.time():
        marks["fault"] = on_host
    if not new_leader:
        problems.append(f"no new leader within {timeout:.0f} s of the fault")
    elif "haproxy_switch" not in marks:
        problems.append(f"HAProxy did not route to the new leader {new_leader} within {timeout:.0f} s")

    # Bring the old leader back and wait until it follows the new one.
    if mode in ("stop", "crash"):
        marks["restart"] = time.time()
        try:
            _call(old_leader, "pgha_service.start", "patroni", timeout=60)
        except CommandExecutionError as exc:
            problems.append(str(exc))
    rejoin_from = marks.get("restart") or marks.get("promotion") or marks["fault"]
    after: list[dict] = []
    deadline = time.monotonic() + timeout
    while new_leader and time.monotonic() < deadline:
        after = members_from_view(_cluster_view(topo))
        if _rejoined(after, old_leader, new_leader):
            marks["rejoin"] = time.time()
            break
        time.sleep(POLL)
    if new_leader and "rejoin" not in marks:
        state = {m["name"]: f"{m['role']}/{m['state']}/tl{m['timeline']}/lag{m['lag']}/streaming={m['streaming']}" for m in after}
        problems.append(f"{old_leader} did not stream from {new_leader} on its timeline within {timeout:.0f} s: {state}")

    time.sleep(1.0)
    writer.stopping.set()
    writer.join(10)
    present: set[int] = set()
    try:
        with psycopg.connect(_dsn(topo), autocommit=True) as conn:
            present = {row[0] for row in conn.execute("SELECT seq FROM pgha_drill WHERE run = %s", (run_id,))}
    except psycopg.Error as exc:
        problems.append(f"cannot read the written rows back through HAProxy: {str(exc).strip()}")

    # Wait briefly for every replica to stream with lag 0 (the rejoined one already does).
    final = members_from_view(_cluster_view(topo))
    for _ in range(int(10 / POLL)):
        final = members_from_view(_cluster_view(topo))
        leader_entry = next((m for m in final if m["role"] == "leader"), None)
        if leader_entry and all(
            m["streaming"] and m["timeline"] == leader_entry["timeline"] and m["lag"] == 0
            for m in final if m is not leader_entry
        ):
            break
        time.sleep(POLL)
    leader_entry = next((m for m in final if m["role"] == "leader"), None)
    timeline_after = leader_entry["timeline"] if leader_entry else None
    replicas_streaming = sum(
        1 for m in final
        if leader_entry and m is not leader_entry and m["streaming"] and m["timeline"] == timeline_after
    )
    measures = analyse(writer.records, marks["fault"], new_address, old_address, present, marks.get("promotion"))
    if measures["lost"]:
        problems.append(f"{measures['lost']} acknowledged writes lost")
    if measures["rto_s"] is None and new_leader:
        problems.append("no write through HAProxy was acknowledged by the new leader")
    if measures["acked_on_old_after_promotion"]:
        problems.append(f"{measures['acked_on_old_after_promotion']} writes acknowledged by the old leader after the promotion")

    def since_fault(name: str) -> float | None:
        return round(marks[name] - marks["fault"], 3) if name in marks else None

    result = {
        "mode": mode,
        "ok": not problems,
        "old_leader": old_leader,
        "new_leader": new_leader,
        "timeline_before": timeline_before,
        "timeline_after": timeline_after,
        "rto_s": measures["rto_s"],
        "write_gap_s": measures["write_gap_s"],
        "promotion_s": since_fault("promotion"),
        # Salt's delivery of the fault, left out of the times above
        "fault_dispatch_s": round(marks["fault"] - marks["dispatch"], 3),
        "haproxy_switch_s": since_fault("haproxy_switch"),
        "acked": measures["acked"],
        "lost": measures["lost"],
        "in_doubt": measures["in_doubt"],
        "acked_on_old_after_promotion": measures["acked_on_old_after_promotion"],
        "rejoin_s": round(marks["rejoin"] - rejoin_from, 3) if "rejoin" in marks else None,
        "replicas_streaming": replicas_streaming,
        "synchronous_mode": bool(topo["patroni"].get("synchronous_mode")),
        "writer_connect_timeout_s": writer.connect_timeout,
        "haproxy_before": haproxy_before,
        "haproxy_after": haproxy_servers(topo),
        "members_after": final,
        "problems": problems,
    }
    if report:
        directory = _report_dir(topo)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(marks["fault"]))
        base = os.path.join(directory, f"drill-{stamp}-{mode}")
        picture = _draw(base + ".png", writer.records, marks, f"pgha failover drill: {mode}, {old_leader} -> {new_leader}")
        result["report"] = base + ".json"
        result["picture"] = picture
        with open(base + ".json", "w", encoding="utf-8") as handle:
            json.dump({**result, "marks": marks, "records": writer.records}, handle, indent=1, default=str)
    return result if result["ok"] else _fail(result)


# ---------------------------------------------------------------------------
# operator commands
# ---------------------------------------------------------------------------


def _post(topo: dict, member: str, path: str, body: dict | None = None, timeout: float = 30.0) -> tuple[int, str]:
    """An authenticated POST to a member's Patroni REST API."""
    auth = (topo["users"]["restapi"], topo["secrets"].get("restapi_password", ""))
    return _http(topo["restapi_urls"][member] + path, auth=auth, timeout=timeout, method="POST", body=body or {})


def _health_problems(members: list[dict], expected: int, max_lag: int) -> list[str]:
    leaders = [m for m in members if m["role"] == "leader" and m["state"] == "running"]
    if len(leaders) != 1:
        return [f"expected one running leader, saw {len(leaders)}"]
    lead = leaders[0]
    problems = []
    if len(members) != expected:
        problems.append(f"expected {expected} members, saw {len(members)}")
    for member in members:
        if member is lead:
            continue
        if member["state"] not in ("running", "streaming"):
            problems.append(f"{member['name']} is {member['state']}")
        elif not member["streaming"]:
            problems.append(f"{member['name']} does not stream from {lead['name']}")
        elif member["timeline"] != lead["timeline"]:
            problems.append(f"{member['name']} on timeline {member['timeline']}, leader on {lead['timeline']}")
        elif member["lag"] is None or member["lag"] > max_lag:
            problems.append(f"{member['name']} lags {member['lag']} bytes (bound {max_lag})")
    return problems


def _etcd_health(topo: dict) -> dict:
    try:
        return _call(topo["etcd_nodes"][0], "etcd_cluster.health", timeout=30)
    except CommandExecutionError as exc:
        return {"healthy": False, "error": str(exc), "endpoints": {}}


def _running_patroni_version(topo: dict, name: str) -> str | None:
    """The version of the Patroni that runs on a member (GET /patroni), None when it does not answer."""
    status, text = _http(topo["restapi_urls"][name] + "/patroni") if name in topo["restapi_urls"] else (0, "")
    try:
        return (json.loads(text).get("patroni") or {}).get("version") if status == 200 else None
    except (ValueError, AttributeError):
        return None


def _status_data(topo: dict) -> dict:
    members = members_from_view(_cluster_view(topo))
    for entry in members:
        entry["patroni_version"] = _running_patroni_version(topo, entry["name"])
    return {
        "members": members,
        "leader": next((m["name"] for m in members if m["role"] == "leader"), None),
        "etcd": _etcd_health(topo),
        "haproxy": haproxy_servers(topo),
    }


def format_status(data: dict) -> str:
    """The status as a text table (pure: unit-tested)."""
    versions = any("patroni_version" in m for m in data["members"])
    lines = ["Patroni members", f"  {'member':<14}{'role':<14}{'state':<12}{'TL':>4}{'lag (bytes)':>13}  streaming"
             + ("  Patroni" if versions else "")]
    for m in data["members"]:
        streaming = "-" if m["role"] == "leader" else ("yes" if m["streaming"] else "NO")
        lag = "" if m["lag"] is None else m["lag"]
        line = f"  {m['name']:<14}{m['role']:<14}{m['state']:<12}{m['timeline'] or '':>4}{lag:>13}  {streaming}"
        lines.append(f"{line:<70}  {m.get('patroni_version') or '?'}" if versions else line)
    if not data["members"]:
        lines.append("  (no Patroni member answered)")
    etcd = data["etcd"]
    over = {True: " (https)", False: " (http)"}.get(etcd.get("tls"), "")
    lines.append(f"etcd: {'healthy' if etcd.get('healthy') else 'NOT HEALTHY'}{over}")
    for name, entry in sorted(etcd.get("endpoints", {}).items()):
        if entry.get("reachable"):
            lines.append(
                f"  {name:<14}{entry['endpoint']:<22}leader {entry.get('leader')}  term {entry.get('raft_term')}"
                f"  index {entry.get('raft_index')}  db {entry.get('db_size')} B"
            )
        else:
            lines.append(f"  {name:<14}{entry.get('endpoint', ''):<22}UNREACHABLE {entry.get('error', '')}")
    if etcd.get("error"):
        lines.append(f"  {etcd['error']}")
    lines.append("HAProxy backends (listen postgres)")
    for server, state in sorted(data["haproxy"].items()):
        lines.append(f"  {server:<14}{state}")
    return "\n".join(lines)


def status(table: bool | None = None) -> Any:
    """
    One view of the whole cluster: Patroni members (role, state, timeline,
    lag, streaming), etcd endpoints and their health, HAProxy's backend
    servers. A table by default; structured data with ``--out=json`` (or
    ``table=False``).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.status
        salt-run pgha.status --out=json
    """
    data = _status_data(_topology())
    if table is None:
        table = __opts__.get("output") in (None, "", "nested", "txt")
    if table:
        return {"outputter": "txt", "data": format_status(data)}
    return data


def check(max_lag: int | None = None) -> dict:
    """
    Every health gate at once: etcd healthy, one Patroni leader, every
    member streaming from it on its timeline within the lag bound, HAProxy
    sending writes to the leader alone. Exit code non-zero when anything is
    unhealthy (for cron or monitoring).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.check
    """
    topo = _topology()
    data = _status_data(topo)
    bound = int(topo["gates"]["max_lag_bytes"] if max_lag is None else max_lag)
    problems = _health_problems(data["members"], len(topo["pg_nodes"]), bound)
    if not data["etcd"].get("healthy"):
        problems.append("etcd is not healthy: " + str(data["etcd"].get("error") or data["etcd"].get("endpoints")))
    up = sorted(server for server, state in data["haproxy"].items() if routes(state))
    if data["leader"] and up != [data["leader"]]:
        problems.append(f"HAProxy sends writes to {up or 'no server'}, the leader is {data['leader']}")
    result = {"healthy": not problems, "problems": problems, "leader": data["leader"]}
    return result if not problems else _fail(result)


def validate(pillar: dict | None = None, tgt: str = "*") -> dict:
    """
    Check the ``pgha`` pillar the minions see (optionally merged with
    ``pillar='{"pgha": ...}'``, to try a change before committing it). Lists
    every wrong key with its full path; exit code non-zero when invalid.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.validate
        salt-run pgha.validate pillar='{"pgha": {"patroni": {"ttl": 10}}}'
    """
    kwarg = {"pillar": pillar} if pillar else {}
    with salt.client.get_local_client(__opts__["conf_file"]) as client:
        ret = client.cmd(tgt, "pgha_config.validate", kwarg=kwarg or None, timeout=60, full_return=True)
    if not ret:
        return _fail({"valid": False, "errors": [f"no minion matching {tgt!r} answered"]})
    errors: list[str] = []
    for minion, answer in sorted(ret.items()):
        value = answer.get("ret") if isinstance(answer, dict) else answer
        if not isinstance(value, dict):
            errors.append(f"{minion}: could not validate: {value}")
            continue
        for error in value.get("errors", []):
            if error not in errors:
                errors.append(error)
    result = {"valid": not errors, "errors": errors, "minions": sorted(ret)}
    return result if not errors else _fail(result)


def switchover(candidate: str | None = None, timeout: int | None = None) -> dict:
    """
    A planned move of the leader (to ``candidate`` when given) through
    Patroni, with a writer committing through HAProxy the whole time; waits
    until HAProxy sends writes to the new leader and reports how long that
    took (``rto_s``) and how many acknowledged writes were lost.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.switchover
        salt-run pgha.switchover candidate=postgres02
    """
    return failover_drill(mode="switchover", candidate=candidate, timeout=timeout, report=False)


def _rolling(action: str, pending_only: bool, timeout: int) -> dict:
    topo = _topology()
    members = members_from_view(_cluster_view(topo))
    leader = next((m["name"] for m in members if m["role"] == "leader"), None)
    if not leader:
        return _fail({"ok": False, "comment": "no running leader: not touching anything"})
    pending = set()
    for name in topo["pg_nodes"]:
        code, text = _http(topo["restapi_urls"][name] + "/patroni")
        if code == 200 and json.loads(text).get("pending_restart"):
            pending.add(name)
    order = [m["name"] for m in members if m["name"] != leader] + [leader]
    done, steps = [], []
    for name in order:
        if action == "restart" and pending_only and name not in pending:
            continue
        if name == leader and action == "restart":
            moved = failover_drill(mode="switchover", timeout=timeout, report=False)
            steps.append({"switchover": {k: moved.get(k) for k in ("old_leader", "new_leader", "rto_s", "lost", "ok")}})
            if not moved.get("ok"):
                return _fail({"ok": False, "done": done, "steps": steps, "comment": "switchover before restarting the leader failed"})
        code, text = _post(topo, name, "/" + action, {}, timeout=float(timeout) + 300)
        if code not in (200, 202):
            return _fail({"ok": False, "done": done, "steps": steps, "comment": f"{action} of {name} answered {code}: {text}"})
        deadline = time.monotonic() + timeout
        problems = ["not checked"]
        while time.monotonic() < deadline:
            time.sleep(1)
            problems = _health_problems(members_from_view(_cluster_view(topo)), len(topo["pg_nodes"]), 10 * 1024 * 1024)
            if not problems:
                break
        if problems:
            return _fail({"ok": False, "done": done, "steps": steps, "comment": f"after the {action} of {name}: {problems}"})
        done.append(name)
        steps.append({action: name})
    return {"ok": True, "done": done, "steps": steps, "pending_restart_before": sorted(pending)}


def restart(pending_only: bool = True, timeout: int = 120) -> dict:
    """
    Rolling restart of PostgreSQL: replicas first, one at a time, each
    followed by a health gate; the leader last, after a switchover moves the
    leadership away. By default only members with ``pending_restart``.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.restart
        salt-run pgha.restart pending_only=False
    """
    return _rolling("restart", pending_only, int(timeout))


def reload(timeout: int = 60) -> dict:
    """
    Rolling reload of Patroni's and PostgreSQL's configuration (replicas
    first, leader last), each followed by a health gate.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.reload
    """
    return _rolling("reload", False, int(timeout))
