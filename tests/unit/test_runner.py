"""
Unit tests of the pgha runner (_runners/pgha.py).

The runner is loaded from its path with ``__opts__``, ``__context__`` and
``__salt__`` injected. The pure parts (the failover drill's measures, the
parsers of HAProxy's CSV statistics and Patroni's /cluster document, the
health gates, the status table) are tested on hand-built inputs shaped like
what HAProxy 2.6 and Patroni 3.0.2 answer; ``check`` and ``validate`` with
the cluster and the Salt client replaced by fakes; the HTTP readers against a
throwaway server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import csv
import http.server
import importlib.util
import io
import itertools
import json
import pathlib
import socket
import threading
import time
from typing import ClassVar
from unittest.mock import MagicMock

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER_PATH = ROOT / "_runners" / "pgha.py"

OPTS = {"conf_file": "/etc/salt/master", "output": None}


@pytest.fixture
def mod():
    """A fresh copy of the runner, with the loader's dunders injected."""
    spec = importlib.util.spec_from_file_location("pgha_runner", RUNNER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = dict(OPTS)
    module.__context__ = {}
    module.__salt__ = {}
    module.log = MagicMock()  # Salt's deferred log handler would flush into pytest's closed streams at exit
    return module


def _forbidden(what: str):
    def boom(*args, **kwargs):
        raise AssertionError(f"{what} must not be called here (args={args!r}, kwargs={kwargs!r})")

    return boom


@pytest.fixture
def no_minions(mod, monkeypatch):
    """Any use of the Salt client fails the test."""
    monkeypatch.setattr(mod.salt.client, "get_local_client", _forbidden("salt.client.get_local_client"))
    return mod


# ---------------------------------------------------------------------------
# analyse: the failover drill's measures
# ---------------------------------------------------------------------------

T0 = 1_700_000_000.0
OLD = "10.131.0.11"
NEW = "10.131.0.12"


def rec(seq: int, sent: float, acked: float | None = None, server: str | None = None, error: str | None = None) -> dict:
    """One writer record, times relative to T0."""
    return {
        "seq": seq,
        "sent": T0 + sent,
        "acked": None if acked is None else T0 + acked,
        "server": server,
        "error": error,
    }


def clean_failover() -> list[dict]:
    """Five acks on the old leader, the fault at 0.55 s, failed attempts, three acks on the new one."""
    return [
        rec(1, 0.09, 0.10, OLD),
        rec(2, 0.19, 0.20, OLD),
        rec(3, 0.29, 0.30, OLD),
        rec(4, 0.39, 0.40, OLD),
        rec(5, 0.49, 0.50, OLD),
        # the fault at 0.55: the in-flight insert fails, then reconnects fail
        rec(6, 0.60, error="OperationalError"),
        rec(7, 1.00, error="OperationalError"),
        rec(8, 2.00, error="OperationalError"),
        rec(9, 3.00, error="OperationalError"),
        # HAProxy now routes to the new leader
        rec(10, 4.10, 4.20, NEW),
        rec(11, 4.29, 4.30, NEW),
        rec(12, 4.39, 4.40, NEW),
    ]


FAULT = T0 + 0.55
PROMOTED = T0 + 3.0
ALL_ACKED = {1, 2, 3, 4, 5, 10, 11, 12}


def test_analyse_clean_failover(mod):
    result = mod.analyse(clean_failover(), FAULT, NEW, OLD, set(ALL_ACKED), PROMOTED)
    assert result == {
        "rto_s": 3.65,  # first ack on the new leader (4.20) minus the fault (0.55)
        "write_gap_s": 3.7,  # 4.20 minus the last ack before it (0.50)
        "attempts": 12,
        "acked": 8,
        "lost": 0,
        "lost_seqs": [],
        "in_doubt": 0,
        "acked_on_old_after_promotion": 0,
    }


def test_analyse_records_in_any_order(mod):
    records = list(reversed(clean_failover()))
    result = mod.analyse(records, FAULT, NEW, OLD, set(ALL_ACKED), PROMOTED)
    assert (result["rto_s"], result["write_gap_s"], result["acked"]) == (3.65, 3.7, 8)


def test_analyse_counts_and_lists_lost_writes(mod):
    # Asynchronous replication: seqs 4 and 5 were acknowledged by the old
    # leader but never reached the new one.
    present = ALL_ACKED - {4, 5}
    result = mod.analyse(clean_failover(), FAULT, NEW, OLD, present, PROMOTED)
    assert result["lost"] == 2
    assert result["lost_seqs"] == [4, 5]
    assert result["acked"] == 8  # they were acknowledged all the same
    assert result["in_doubt"] == 0


def test_analyse_lost_seqs_sorted_and_capped_at_50(mod):
    records = [rec(seq, seq * 0.01, seq * 0.01 + 0.001, OLD) for seq in range(70, 0, -1)]
    records.append(rec(71, 1.5, 2.0, NEW))
    present = {seq for seq in range(1, 72) if seq > 60 or seq % 2}  # even seqs up to 60 lost
    result = mod.analyse(records, T0 + 1.0, NEW, OLD, present)
    lost = list(range(2, 61, 2))
    assert result["lost"] == len(lost) == 30
    assert result["lost_seqs"] == lost

    everything_lost = mod.analyse(records, T0 + 1.0, NEW, OLD, set())
    assert everything_lost["lost"] == 71
    assert everything_lost["lost_seqs"] == list(range(1, 51))


def test_analyse_in_doubt_failed_but_committed(mod):
    # seq 6's commit reached the old leader (and the new one) but its
    # acknowledgement was lost with the connection: in doubt, not lost.
    present = ALL_ACKED | {6}
    result = mod.analyse(clean_failover(), FAULT, NEW, OLD, present, PROMOTED)
    assert result["in_doubt"] == 1
    assert result["lost"] == 0
    assert result["acked"] == 8


def test_analyse_reconnect_retries_do_not_change_acked(mod):
    base = mod.analyse(clean_failover(), FAULT, NEW, OLD, set(ALL_ACKED), PROMOTED)
    # Twenty more failed reconnect attempts during the outage.
    records = clean_failover()
    outage = [rec(100 + i, 1.0 + i * 0.1, error="OperationalError") for i in range(20)]
    records[9:9] = outage
    retried = mod.analyse(records, FAULT, NEW, OLD, set(ALL_ACKED), PROMOTED)
    assert retried["attempts"] == base["attempts"] + 20
    for key in ("acked", "lost", "lost_seqs", "in_doubt", "rto_s", "write_gap_s", "acked_on_old_after_promotion"):
        assert retried[key] == base[key], key


def test_analyse_counts_acks_by_old_leader_after_promotion(mod):
    records = clean_failover()
    # The old leader still commits at 2.9 (before the promotion at 3.0: fine)
    # and at 3.2 and 3.5 (after it: two writable primaries).
    records[7:9] = [rec(8, 2.89, 2.90, OLD), rec(9, 3.19, 3.20, OLD), rec(13, 3.49, 3.50, OLD)]
    present = ALL_ACKED | {8, 9, 13}
    result = mod.analyse(records, FAULT, NEW, OLD, present, PROMOTED)
    assert result["acked_on_old_after_promotion"] == 2
    assert result["acked"] == 11
    # the new leader's first ack is still 4.20; the last ack before it is now 3.50
    assert result["rto_s"] == 3.65
    assert result["write_gap_s"] == 0.7

    # Without a promotion time nothing can be counted as split.
    assert mod.analyse(records, FAULT, NEW, OLD, present)["acked_on_old_after_promotion"] == 0


def test_analyse_no_ack_on_new_leader(mod):
    records = [r for r in clean_failover() if r["server"] != NEW]
    result = mod.analyse(records, FAULT, NEW, OLD, {1, 2, 3, 4, 5}, PROMOTED)
    assert result["rto_s"] is None
    assert result["write_gap_s"] is None
    assert result["acked"] == 5
    assert result["lost"] == 0


def test_analyse_no_new_leader_at_all(mod):
    records = [r for r in clean_failover() if r["server"] != NEW]
    result = mod.analyse(records, FAULT, None, OLD, {1, 2, 3, 4, 5})
    assert result["rto_s"] is None
    assert result["write_gap_s"] is None
    assert result["attempts"] == 9


def test_analyse_same_address_is_no_failover(mod):
    # The "new" leader is the old one (it came back): acks after the fault on
    # the same address measure no failover.
    records = clean_failover()
    for record in records:
        if record["server"] == NEW:
            record["server"] = OLD
    result = mod.analyse(records, FAULT, OLD, OLD, set(ALL_ACKED), PROMOTED)
    assert result["rto_s"] is None
    assert result["write_gap_s"] is None
    assert result["acked"] == 8


def test_analyse_ignores_new_leader_acks_before_the_fault(mod):
    records = clean_failover()
    # An ack from the new leader's address at 0.30, before the fault at 0.55.
    records[2] = rec(3, 0.29, 0.30, NEW)
    result = mod.analyse(records, FAULT, NEW, OLD, set(ALL_ACKED), PROMOTED)
    assert result["rto_s"] == 3.65  # measured from 4.20, not from 0.30 (which would be negative)
    assert result["write_gap_s"] == 3.7

    # With no ack from the new leader after the fault, there is no RTO at all.
    only_early = [r for r in records if not (r["server"] == NEW and r["acked"] > FAULT)]
    result = mod.analyse(only_early, FAULT, NEW, OLD, {1, 2, 3, 4, 5}, PROMOTED)
    assert result["rto_s"] is None
    assert result["write_gap_s"] is None


def test_analyse_empty(mod):
    result = mod.analyse([], FAULT, NEW, OLD, set())
    assert result["attempts"] == result["acked"] == result["lost"] == result["in_doubt"] == 0
    assert result["rto_s"] is None and result["write_gap_s"] is None


# ---------------------------------------------------------------------------
# parse_haproxy_csv
# ---------------------------------------------------------------------------

# HAProxy 2.6's static CSV fields (management.txt, 9.1), then the '-'
# separator and a few of the module fields that follow it.
HAPROXY_HEADER = (
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,"
    "act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,"
    "rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,"
    "hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,"
    "last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,"
    "check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,"
    "conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,"
    "src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,"
    "need_conn_est,uweight,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake"
)
HAPROXY_FIELDS = HAPROXY_HEADER.split(",")


def haproxy_row(pxname: str, svname: str, status: str, **extra: str) -> dict:
    row = {"pxname": pxname, "svname": svname, "status": status, "pid": "1", "iid": "2", "mode": "tcp"}
    if svname not in ("FRONTEND", "BACKEND"):
        row.update(type="2", check_status="L7OK" if status.startswith("UP") else "L7STS", check_code="200",
                   check_rise="2", check_fall="3", weight="1", act="1", bck="0")
    row.update(extra)
    return row


def haproxy_csv(rows: list[dict]) -> str:
    """The text of GET /;csv: a '# '-prefixed header, a trailing comma on every line."""
    out = io.StringIO()
    out.write("# " + ",".join(HAPROXY_FIELDS) + ",\n")
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([row.get(field, "") for field in HAPROXY_FIELDS] + [""])
    out.write("\n")
    return out.getvalue()


def stats_page() -> str:
    return haproxy_csv([
        haproxy_row("stats", "FRONTEND", "OPEN", mode="http"),
        haproxy_row("stats", "BACKEND", "UP", mode="http"),
        haproxy_row("postgres", "FRONTEND", "OPEN"),
        haproxy_row("postgres", "postgres01", "UP", addr="10.131.0.11:5432"),
        haproxy_row("postgres", "postgres02", "DOWN", addr="10.131.0.12:5432",
                    last_chk="HTTP status check returned code <503>, \"replica\""),
        haproxy_row("postgres", "postgres03", "DOWN 1/2", addr="10.131.0.13:5432"),
        haproxy_row("postgres", "BACKEND", "UP"),
        # another proxy with a server of the same name: not the write proxy
        haproxy_row("postgres_replicas", "postgres02", "UP"),
    ])


def test_haproxy_header_is_realistic():
    # the status column is the 18th (index 17), as documented
    assert HAPROXY_FIELDS[17] == "status"
    assert stats_page().startswith("# pxname,svname,qcur,")


def test_parse_haproxy_csv_servers_of_one_proxy(mod):
    assert mod.parse_haproxy_csv(stats_page(), "postgres") == {
        "postgres01": "UP",
        "postgres02": "DOWN",
        "postgres03": "DOWN 1/2",
    }


def test_parse_haproxy_csv_other_proxy_and_unknown_proxy(mod):
    assert mod.parse_haproxy_csv(stats_page(), "postgres_replicas") == {"postgres02": "UP"}
    # 'stats' has only FRONTEND and BACKEND rows: no servers
    assert mod.parse_haproxy_csv(stats_page(), "stats") == {}
    assert mod.parse_haproxy_csv(stats_page(), "nope") == {}
    assert mod.parse_haproxy_csv("", "postgres") == {}


# ---------------------------------------------------------------------------
# members_from_view
# ---------------------------------------------------------------------------


def patroni_member(name: str, role: str, timeline: int = 4, state: str = "running", lag=None, last: int = 11) -> dict:
    """One member of Patroni 3.0.2's GET /cluster (the leader has no 'lag' key)."""
    member = {
        "name": name,
        "role": role,
        "state": state,
        "api_url": f"http://10.131.0.{last}:8008/patroni",
        "host": f"10.131.0.{last}",
        "port": 5432,
        "timeline": timeline,
    }
    if lag is not None:
        member["lag"] = lag
    return member


def view_of(members: list[dict], replication: list[dict], leader: str | None = "postgres01") -> dict:
    return {"cluster": {"members": members, "scope": "pgha"}, "leader": leader, "replication": replication}


def replication_entry(name: str, state: str = "streaming", sync_state: str = "async") -> dict:
    return {"usename": "replicator", "application_name": name, "client_addr": "10.131.0.1",
            "state": state, "sync_state": sync_state}


def test_members_from_view(mod):
    view = view_of(
        [
            patroni_member("postgres03", "replica", lag=4096, last=13),
            patroni_member("postgres01", "leader", last=11),
            patroni_member("postgres02", "sync_standby", lag=0, last=12),
        ],
        [replication_entry("postgres02", sync_state="sync"), replication_entry("postgres03", state="catchup")],
    )
    assert mod.members_from_view(view) == [
        {"name": "postgres01", "role": "leader", "state": "running", "timeline": 4, "lag": 0, "streaming": False},
        {"name": "postgres02", "role": "sync_standby", "state": "running", "timeline": 4, "lag": 0, "streaming": True},
        {"name": "postgres03", "role": "replica", "state": "running", "timeline": 4, "lag": 4096, "streaming": False},
    ]


def test_members_from_view_unknown_lag_and_absent_replica(mod):
    view = view_of(
        [
            patroni_member("postgres01", "leader"),
            patroni_member("postgres02", "replica", lag="unknown", state="stopped", timeline=None),
            patroni_member("postgres03", "replica", lag=0, timeline=3),
        ],
        [replication_entry("postgres03")],
    )
    members = {m["name"]: m for m in mod.members_from_view(view)}
    assert members["postgres02"]["lag"] is None
    assert members["postgres02"]["streaming"] is False
    assert members["postgres02"]["state"] == "stopped"
    assert members["postgres03"]["streaming"] is True
    assert members["postgres03"]["timeline"] == 3


def test_members_from_view_standby_leader_is_a_leader(mod):
    view = view_of([patroni_member("postgres01", "standby_leader")], [])
    assert mod.members_from_view(view)[0]["role"] == "leader"


def test_members_from_view_none(mod):
    assert mod.members_from_view(None) == []
    assert mod.members_from_view(view_of([], [])) == []


# ---------------------------------------------------------------------------
# _rejoined
# ---------------------------------------------------------------------------


def member(name: str, role: str = "replica", state: str = "running", timeline: int | None = 5,
           lag: int | None = 0, streaming: bool = True) -> dict:
    """One normalised member, as members_from_view returns it."""
    return {"name": name, "role": role, "state": state, "timeline": timeline, "lag": lag, "streaming": streaming}


def after_failover(**old_overrides) -> list[dict]:
    """postgres02 promoted on timeline 5; postgres01 (the old leader) as given."""
    return [
        member("postgres01", **old_overrides),
        member("postgres02", role="leader", streaming=False),
        member("postgres03"),
    ]


@pytest.mark.parametrize("role", ["replica", "sync_standby"])
def test_rejoined(mod, role):
    assert mod._rejoined(after_failover(role=role), "postgres01", "postgres02") is True


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "leader"},
        {"role": "uninitialized"},
        {"state": "stopped"},
        {"state": "starting"},
        {"state": "crashed"},
        {"streaming": False},
        {"timeline": 4},
        {"timeline": None},
        {"lag": 1024},
        {"lag": None},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_not_rejoined_on_each_violation(mod, overrides):
    assert mod._rejoined(after_failover(), "postgres01", "postgres02") is True  # the baseline passes
    assert mod._rejoined(after_failover(**overrides), "postgres01", "postgres02") is False


def test_not_rejoined_when_new_leader_is_not_leader_or_members_missing(mod):
    members = after_failover()
    members[1]["role"] = "replica"
    assert mod._rejoined(members, "postgres01", "postgres02") is False
    for absent in ("postgres01", "postgres02"):
        members = [m for m in after_failover() if m["name"] != absent]
        assert mod._rejoined(members, "postgres01", "postgres02") is False, absent
    assert mod._rejoined([], "postgres01", "postgres02") is False


# ---------------------------------------------------------------------------
# _health_problems
# ---------------------------------------------------------------------------


def healthy_members() -> list[dict]:
    return [
        member("postgres01", role="leader", streaming=False),
        member("postgres02", role="sync_standby"),
        member("postgres03", lag=512),
    ]


def test_health_healthy(mod):
    assert mod._health_problems(healthy_members(), 3, 1024) == []
    assert mod._health_problems(healthy_members(), 3, 512) == []  # the bound itself is allowed


def test_health_no_leader(mod):
    members = healthy_members()
    members[0]["role"] = "replica"
    assert mod._health_problems(members, 3, 1024) == ["expected one running leader, saw 0"]


def test_health_stopped_leader_is_no_leader(mod):
    members = healthy_members()
    members[0]["state"] = "stopped"
    assert mod._health_problems(members, 3, 1024) == ["expected one running leader, saw 0"]


def test_health_two_leaders(mod):
    members = healthy_members()
    members[2]["role"] = "leader"
    assert mod._health_problems(members, 3, 1024) == ["expected one running leader, saw 2"]


def test_health_missing_member(mod):
    members = healthy_members()[:2]
    assert mod._health_problems(members, 3, 1024) == ["expected 3 members, saw 2"]


def test_health_replica_not_streaming(mod):
    members = healthy_members()
    members[2]["streaming"] = False
    assert mod._health_problems(members, 3, 1024) == ["postgres03 does not stream from postgres01"]


def test_health_replica_stopped(mod):
    members = healthy_members()
    members[1]["state"] = "stopped"
    members[1]["streaming"] = False
    assert mod._health_problems(members, 3, 1024) == ["postgres02 is stopped"]


def test_health_timeline_mismatch(mod):
    members = healthy_members()
    members[2]["timeline"] = 4
    assert mod._health_problems(members, 3, 1024) == ["postgres03 on timeline 4, leader on 5"]


def test_health_lag_above_bound(mod):
    members = healthy_members()
    members[2]["lag"] = 2048
    assert mod._health_problems(members, 3, 1024) == ["postgres03 lags 2048 bytes (bound 1024)"]
    members[2]["lag"] = None
    assert mod._health_problems(members, 3, 1024) == ["postgres03 lags None bytes (bound 1024)"]


def test_health_several_problems_at_once(mod):
    members = healthy_members()
    members[1]["streaming"] = False
    members[2]["lag"] = 1 << 30
    members.append(member("postgres04"))
    problems = mod._health_problems(members, 3, 1024)
    assert problems == [
        "expected 3 members, saw 4",
        "postgres02 does not stream from postgres01",
        f"postgres03 lags {1 << 30} bytes (bound 1024)",
    ]


# ---------------------------------------------------------------------------
# format_status
# ---------------------------------------------------------------------------


def status_data(etcd_healthy: bool = True) -> dict:
    endpoints = {
        "etcd01": {"endpoint": "10.131.0.21:2379", "reachable": True, "leader": "etcd02", "raft_term": 7,
                   "raft_index": 1234, "db_size": 20480},
        "etcd02": {"endpoint": "10.131.0.22:2379", "reachable": True, "leader": "etcd02", "raft_term": 7,
                   "raft_index": 1234, "db_size": 20480},
        "etcd03": {"endpoint": "10.131.0.23:2379", "reachable": etcd_healthy, "leader": "etcd02", "raft_term": 7,
                   "raft_index": 1234, "db_size": 20480},
    }
    if not etcd_healthy:
        endpoints["etcd03"] = {"endpoint": "10.131.0.23:2379", "reachable": False, "error": "connection refused"}
    return {
        "members": [
            member("postgres01", role="leader", timeline=6, streaming=False),
            member("postgres02", role="sync_standby", timeline=6, lag=0),
            member("postgres03", role="replica", timeline=5, lag=None, streaming=False),
        ],
        "leader": "postgres01",
        "etcd": {"healthy": etcd_healthy, "tls": True, "endpoints": endpoints},
        "haproxy": {"postgres01": "UP", "postgres02": "DOWN", "postgres03": "DOWN 1/2"},
    }


def sections(text: str) -> dict[str, list[list[str]]]:
    """The table's lines, split into whitespace-separated cells, by section."""
    out: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if not line.startswith(" "):
            current = line
            out[current] = []
        else:
            out[current].append(line.split())
    return out


def test_format_status_table(mod):
    text = mod.format_status(status_data())
    table = sections(text)
    assert list(table) == ["Patroni members", "etcd: healthy (https)", "HAProxy backends (listen postgres)"]
    rows = table["Patroni members"]
    assert rows[0] == ["member", "role", "state", "TL", "lag", "(bytes)", "streaming"]
    assert rows[1:] == [
        ["postgres01", "leader", "running", "6", "0", "-"],
        ["postgres02", "sync_standby", "running", "6", "0", "yes"],
        ["postgres03", "replica", "running", "5", "NO"],  # unknown lag: empty cell
    ]
    etcd_rows = table["etcd: healthy (https)"]
    assert [row[0] for row in etcd_rows] == ["etcd01", "etcd02", "etcd03"]
    assert etcd_rows[0][:4] == ["etcd01", "10.131.0.21:2379", "leader", "etcd02"]
    assert table["HAProxy backends (listen postgres)"] == [
        ["postgres01", "UP"],
        ["postgres02", "DOWN"],
        ["postgres03", "DOWN", "1/2"],
    ]
    assert "NOT HEALTHY" not in text


def test_format_status_unhealthy_etcd_and_no_members(mod):
    data = status_data(etcd_healthy=False)
    data["members"] = []
    data["etcd"]["error"] = "pgha: minion etcd01 did not answer etcd_cluster.health within 30 s"
    text = mod.format_status(data)
    assert "etcd: NOT HEALTHY (https)" in text
    data["etcd"]["tls"] = False
    assert "etcd: NOT HEALTHY (http)" in mod.format_status(data)
    assert "etcd: healthy" not in text
    assert "(no Patroni member answered)" in text
    etcd03 = next(line for line in text.splitlines() if "etcd03" in line)
    assert "UNREACHABLE" in etcd03 and "connection refused" in etcd03
    assert "did not answer etcd_cluster.health" in text


def test_format_status_patroni_versions(mod):
    data = status_data()
    for entry, version in zip(data["members"], ["4.1.5", "4.1.5", None]):
        entry["patroni_version"] = version
    rows = sections(mod.format_status(data))["Patroni members"]
    assert rows[0][-1] == "Patroni"
    assert [row[-1] for row in rows[1:]] == ["4.1.5", "4.1.5", "?"]


def test_status_data_running_patroni_versions(mod, monkeypatch):
    topo = {"restapi_urls": {"postgres01": "http://10.131.0.15:8008", "postgres02": "http://10.131.0.32:8008"}}
    view = {"cluster": {"members": [{"name": "postgres01", "role": "leader", "state": "running", "timeline": 3},
                                    {"name": "postgres02", "role": "replica", "state": "streaming", "timeline": 3}]},
            "replication": [{"application_name": "postgres02", "state": "streaming"}]}
    answers = {"http://10.131.0.15:8008/patroni": (200, json.dumps({"patroni": {"version": "4.1.5", "scope": "postgres"}})),
               "http://10.131.0.32:8008/patroni": (0, "connection refused")}
    monkeypatch.setattr(mod, "_cluster_view", lambda topo: view)
    monkeypatch.setattr(mod, "_http", lambda url, **kwargs: answers[url])
    monkeypatch.setattr(mod, "_etcd_health", lambda topo: {"healthy": True})
    monkeypatch.setattr(mod, "haproxy_servers", lambda topo: {})
    data = mod._status_data(topo)
    assert [(m["name"], m["patroni_version"]) for m in data["members"]] == [("postgres01", "4.1.5"), ("postgres02", None)]


# ---------------------------------------------------------------------------
# _fail
# ---------------------------------------------------------------------------


def test_fail_sets_retcode_in_context_and_result(mod):
    result = {"ok": False, "comment": "broken"}
    returned = mod._fail(result)
    assert returned is result
    assert returned == {"ok": False, "comment": "broken", "retcode": 1}
    assert mod.__context__["retcode"] == 1


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------

TOPO = {
    "pg_nodes": ["postgres01", "postgres02", "postgres03"],
    "gates": {"max_lag_bytes": 1048576},
}


@pytest.fixture
def cluster(no_minions, monkeypatch):
    """check() against a settable status; the topology and the status never reach a minion."""
    state = {"data": status_data()}
    state["data"]["members"][2].update(timeline=6, lag=0, streaming=True)
    state["data"]["haproxy"] = {"postgres01": "UP", "postgres02": "DOWN", "postgres03": "DOWN"}
    seen_topo = []

    def status(topo):
        seen_topo.append(topo)
        return state["data"]

    monkeypatch.setattr(no_minions, "_topology", lambda: json.loads(json.dumps(TOPO)))
    monkeypatch.setattr(no_minions, "_status_data", status)
    state["seen_topo"] = seen_topo
    return state


def test_check_healthy(mod, cluster):
    result = mod.check()
    assert result == {"healthy": True, "problems": [], "leader": "postgres01"}
    assert cluster["seen_topo"] == [TOPO]
    assert "retcode" not in mod.__context__


def test_check_unhealthy(mod, cluster):
    cluster["data"]["members"][2]["streaming"] = False
    cluster["data"]["etcd"] = {"healthy": False, "error": "pgha: minion etcd01 did not answer", "endpoints": {}}
    result = mod.check()
    assert result["healthy"] is False
    assert result["leader"] == "postgres01"
    assert result["problems"] == [
        "postgres03 does not stream from postgres01",
        "etcd is not healthy: pgha: minion etcd01 did not answer",
    ]
    assert result["retcode"] == 1
    assert mod.__context__["retcode"] == 1


def test_check_lag_bound_from_gates_or_argument(mod, cluster):
    cluster["data"]["members"][2]["lag"] = 2048
    assert mod.check()["healthy"] is True  # within the pillar's 1 MiB
    result = mod.check(max_lag=1024)
    assert result["healthy"] is False
    assert result["problems"] == ["postgres03 lags 2048 bytes (bound 1024)"]


def test_check_no_leader(mod, cluster):
    for m in cluster["data"]["members"]:
        m["role"] = "replica"
    cluster["data"]["leader"] = None
    result = mod.check()
    assert result["healthy"] is False
    assert result["problems"] == ["expected one running leader, saw 0"]
    assert mod.__context__["retcode"] == 1


@pytest.mark.parametrize(
    ("haproxy", "routed"),
    [
        ({"postgres01": "DOWN", "postgres02": "UP", "postgres03": "DOWN"}, "['postgres02']"),
        ({"postgres01": "UP", "postgres02": "UP", "postgres03": "DOWN"}, "['postgres01', 'postgres02']"),
        ({"postgres01": "DOWN", "postgres02": "DOWN", "postgres03": "DOWN"}, "no server"),
        ({"error": "stats page answered 401"}, "no server"),
    ],
    ids=["non-leader", "two-servers", "none", "stats-error"],
)
def test_check_haproxy_must_route_to_the_leader_alone(mod, cluster, haproxy, routed):
    cluster["data"]["haproxy"] = haproxy
    result = mod.check()
    assert result["healthy"] is False
    assert result["problems"] == [f"HAProxy sends writes to {routed}, the leader is postgres01"]
    assert result["retcode"] == 1
    assert mod.__context__["retcode"] == 1


def test_check_old_leader_still_up_while_going_down(mod, cluster):
    cluster["data"]["haproxy"] = {"postgres01": "UP", "postgres02": "UP 2/3", "postgres03": "DOWN"}
    assert mod.check()["healthy"] is False


# ---------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------


class FakeLocalClient:
    """Stands in for salt.client.LocalClient as a context manager; records every cmd call."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.calls: list[dict] = []
        self.conf_files: list[str] = []
        self.closed = 0

    def __call__(self, conf_file=None, **kwargs):  # salt.client.get_local_client
        self.conf_files.append(conf_file)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed += 1
        return False

    def cmd(self, tgt, fun, arg=(), timeout=None, tgt_type="glob", ret="", jid="", full_return=False,
            kwarg=None, **kwargs):
        self.calls.append({"tgt": tgt, "fun": fun, "arg": arg, "kwarg": kwarg, "timeout": timeout,
                           "full_return": full_return})
        return json.loads(json.dumps(self.answers))


@pytest.fixture
def minions(mod, monkeypatch):
    def install(answers: dict) -> FakeLocalClient:
        fake = FakeLocalClient(answers)
        monkeypatch.setattr(mod.salt.client, "get_local_client", fake)
        return fake

    return install


def test_validate_merges_errors_without_duplicates(mod, minions):
    fake = minions({
        "postgres02": {"ret": {"valid": False, "errors": ["pgha:patroni:ttl: must be at least 20",
                                                          "pgha:nodes:etcd03:address: not an IP address"]},
                       "retcode": 1, "jid": "20240101"},
        "postgres01": {"ret": {"valid": False, "errors": ["pgha:patroni:ttl: must be at least 20"]},
                       "retcode": 1, "jid": "20240101"},
        "etcd01": {"ret": {"valid": True, "errors": []}, "retcode": 0, "jid": "20240101"},
    })
    result = mod.validate()
    assert result == {
        "valid": False,
        "errors": ["pgha:patroni:ttl: must be at least 20", "pgha:nodes:etcd03:address: not an IP address"],
        "minions": ["etcd01", "postgres01", "postgres02"],
        "retcode": 1,
    }
    assert mod.__context__["retcode"] == 1
    assert fake.conf_files == ["/etc/salt/master"]
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert (call["tgt"], call["fun"], call["full_return"]) == ("*", "pgha_config.validate", True)
    assert not call["kwarg"]
    assert fake.closed == 1


def test_validate_valid(mod, minions):
    minions({
        "postgres01": {"ret": {"valid": True, "errors": []}, "retcode": 0},
        "etcd01": {"ret": {"valid": True, "errors": []}, "retcode": 0},
    })
    result = mod.validate()
    assert result == {"valid": True, "errors": [], "minions": ["etcd01", "postgres01"]}
    assert "retcode" not in mod.__context__


def test_validate_passes_pillar_and_target(mod, minions):
    fake = minions({"postgres01": {"ret": {"valid": True, "errors": []}, "retcode": 0}})
    change = {"pgha": {"patroni": {"ttl": 10}}}
    mod.validate(pillar=change, tgt="postgres*")
    assert fake.calls[0]["tgt"] == "postgres*"
    assert fake.calls[0]["kwarg"] == {"pillar": change}


def test_validate_no_minion_answered(mod, minions):
    minions({})
    result = mod.validate(tgt="pg*")
    assert result["valid"] is False
    assert result["errors"] == ["no minion matching 'pg*' answered"]
    assert result["retcode"] == 1
    assert mod.__context__["retcode"] == 1


def test_validate_minion_that_cannot_validate(mod, minions):
    minions({
        "postgres01": {"ret": "'pgha_config.validate' is not available.", "retcode": 1},
        "postgres02": {"ret": {"valid": True, "errors": []}, "retcode": 0},
    })
    result = mod.validate()
    assert result["valid"] is False
    assert result["errors"] == ["postgres01: could not validate: 'pgha_config.validate' is not available."]
    assert mod.__context__["retcode"] == 1


# ---------------------------------------------------------------------------
# failover_drill argument checking
# ---------------------------------------------------------------------------


def test_failover_drill_bogus_mode_touches_nothing(mod, no_minions, monkeypatch):
    monkeypatch.setattr(mod, "_topology", _forbidden("_topology"))
    monkeypatch.setattr(mod, "_http", _forbidden("_http"))
    monkeypatch.setattr(mod, "_call", _forbidden("_call"))
    monkeypatch.setattr(mod.psycopg, "connect", _forbidden("psycopg.connect"))
    result = mod.failover_drill(mode="bogus")
    assert result["ok"] is False
    assert result["retcode"] == 1
    assert mod.__context__["retcode"] == 1
    assert "'bogus'" in result["comment"]
    for mode in ("stop", "crash", "switchover"):
        assert mode in result["comment"]


# ---------------------------------------------------------------------------
# the HTTP readers, against a throwaway server on 127.0.0.1
# ---------------------------------------------------------------------------


class FakeClusterHandler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict] = {}
    seen: ClassVar[list] = []

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Authorization")))
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        code, body, content_type = route
        payload = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    FakeClusterHandler.routes = {}
    FakeClusterHandler.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), FakeClusterHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_port, FakeClusterHandler
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def haproxy_topo(port: int) -> dict:
    return {
        "haproxy": {"write_address": "127.0.0.1", "stats_bind_address": "*", "stats_port": port},
        "users": {"haproxy_stats": "stats"},
        "secrets": {"haproxy_stats_password": "Stats-pw-8a4b33c7e1"},
    }


def test_haproxy_servers_reads_the_csv_with_auth(mod, http_server):
    port, handler = http_server
    handler.routes["/;csv"] = (200, stats_page(), "text/plain")
    assert mod.haproxy_servers(haproxy_topo(port)) == {
        "postgres01": "UP", "postgres02": "DOWN", "postgres03": "DOWN 1/2",
    }
    expected = "Basic " + base64.b64encode(b"stats:Stats-pw-8a4b33c7e1").decode()
    assert handler.seen == [("/;csv", expected)]


def test_haproxy_servers_reports_errors(mod, http_server):
    port, handler = http_server
    handler.routes["/;csv"] = (401, "<html>401 Unauthorized</html>", "text/html")
    assert mod.haproxy_servers(haproxy_topo(port)) == {"error": "stats page answered 401"}
    assert mod.haproxy_servers(haproxy_topo(closed_port())) == {"error": "stats page answered 0"}


def test_cluster_view_skips_unreachable_member_and_reads_leader_replication(mod, http_server):
    port, handler = http_server
    cluster = {"members": [
        patroni_member("postgres01", "replica", lag=0, last=11),
        patroni_member("postgres02", "leader", last=12),
        patroni_member("postgres03", "replica", lag=128, last=13),
    ], "scope": "pgha"}
    patroni = {"state": "running", "role": "master", "timeline": 4,
               "replication": [replication_entry("postgres01"), replication_entry("postgres03")]}
    handler.routes["/cluster"] = (200, json.dumps(cluster), "application/json")
    handler.routes["/patroni"] = (200, json.dumps(patroni), "application/json")
    live = f"http://127.0.0.1:{port}"
    topo = {
        "pg_nodes": ["postgres01", "postgres02", "postgres03"],
        "restapi_urls": {"postgres01": f"http://127.0.0.1:{closed_port()}", "postgres02": live, "postgres03": live},
    }
    view = mod._cluster_view(topo)
    assert view["leader"] == "postgres02"
    assert [path for path, _ in handler.seen] == ["/cluster", "/patroni"]
    assert [(m["name"], m["role"], m["lag"], m["streaming"]) for m in mod.members_from_view(view)] == [
        ("postgres01", "replica", 0, True),
        ("postgres02", "leader", 0, False),
        ("postgres03", "replica", 128, True),
    ]


def test_cluster_view_none_when_no_member_answers(mod):
    dead = f"http://127.0.0.1:{closed_port()}"
    topo = {"pg_nodes": ["postgres01", "postgres02"], "restapi_urls": {"postgres01": dead, "postgres02": dead}}
    assert mod._cluster_view(topo) is None
    assert mod.members_from_view(mod._cluster_view(topo)) == []


# ---------------------------------------------------------------------------
# the drill's writer
# ---------------------------------------------------------------------------


def test_writer_gives_up_a_hanging_connection_within_its_own_timeout(mod):
    """
    HAProxy with no server to send a connection to keeps it waiting; libpq's
    connect_timeout cannot go below 2 s. The writer must try again after its
    own 0.3 s here, several times a second.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # accepts (the kernel does), never answers
    port = server.getsockname()[1]
    dsn = f"host=127.0.0.1 port={port} user=x password=y dbname=postgres connect_timeout=10"
    writer = mod.Writer(dsn, "unit", pause=0.0, connect_timeout=0.3)
    try:
        writer.start()
        time.sleep(1.6)
    finally:
        writer.stopping.set()
        writer.join(timeout=5)
        server.close()
    assert not writer.is_alive()
    records = writer.records
    assert len(records) >= 3, records
    assert all(r["error"] == "ConnectTimeout" and r["acked"] is None for r in records)
    gaps = [b["sent"] - a["sent"] for a, b in itertools.pairwise(records)]
    assert max(gaps) < 1.0, gaps


def test_writer_records_refused_connections(mod):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    writer = mod.Writer(f"host=127.0.0.1 port={port} user=x dbname=postgres", "unit", pause=0.0)
    writer.start()
    time.sleep(0.5)
    writer.stopping.set()
    writer.join(timeout=5)
    assert writer.records and all(r["error"] == "OperationalError" for r in writer.records)
