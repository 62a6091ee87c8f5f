"""
Unit tests of _utils/pgha_cluster.py, the code every module, state and the
runner share about a running cluster: HTTP with basic authentication,
Patroni's REST client, the member model and its health rules, HAProxy's CSV
statistics, the status table.

HTTP is tested against a mocked ``urllib.request.urlopen``; the REST client
with its ``request`` replaced by a fake that answers by (method, URL). The
documents are shaped like those of Patroni 3.0.2 and 4.1.5 and HAProxy 2.6.
"""

from __future__ import annotations

import base64
import csv
import http.server
import io
import json
import urllib.error
from unittest.mock import patch

import pytest
from pgha_test_helpers import TEST_SECRETS, cluster_model, load
from salt.exceptions import CommandExecutionError

cluster_util = load("_utils", "pgha_cluster")

URLS = {
    "postgres01": "http://127.0.0.15:8008",
    "postgres02": "http://127.0.0.32:8008",
    "postgres03": "http://127.0.0.6:8008",
}
AUTH = "Basic " + base64.b64encode(b"patroni:rest-s3cret").decode()


class FakeResponse(io.BytesIO):
    status = 200

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()


def error_page(code: int) -> str:
    """The body of Patroni's send_error(code): Python's default error page."""
    message, explain = http.server.BaseHTTPRequestHandler.responses[code]
    return http.server.DEFAULT_ERROR_MESSAGE % {"code": code, "message": message, "explain": explain}


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


def test_request_sends_json_body_and_basic_auth():
    seen = {}

    def urlopen(req, timeout, context):
        seen.update(url=req.full_url, method=req.get_method(), body=req.data, headers=dict(req.header_items()),
                    timeout=timeout, context=context)
        return FakeResponse(b'{"ttl": 30}')

    with patch("urllib.request.urlopen", urlopen):
        answer = cluster_util.request("http://127.0.0.15:8008/config", method="PATCH", body={"ttl": 30},
                                      auth=("patroni", "rest-s3cret"), timeout=7)
    assert answer == (200, {"ttl": 30})
    assert (seen["url"], seen["method"], json.loads(seen["body"])) == ("http://127.0.0.15:8008/config", "PATCH", {"ttl": 30})
    assert seen["headers"]["Authorization"] == AUTH
    assert seen["headers"]["Content-type"] == "application/json"
    assert seen["timeout"] == 7
    assert seen["context"] is None  # plain http: no TLS context


def test_request_get_has_no_auth_and_no_body():
    seen = {}

    def urlopen(req, timeout, context):
        seen.update(body=req.data, headers=dict(req.header_items()))
        return FakeResponse(b"reload scheduled")

    with patch("urllib.request.urlopen", urlopen):
        assert cluster_util.request("http://127.0.0.15:8008/cluster") == (200, "reload scheduled")
    assert seen["body"] is None
    assert "Authorization" not in seen["headers"]


def test_request_over_https_verifies_against_the_ca(tmp_path):
    seen = {}

    def urlopen(req, timeout, context):
        seen["context"] = context
        return FakeResponse(b"{}")

    with patch("urllib.request.urlopen", urlopen), patch("ssl.create_default_context") as make:
        cluster_util.request("https://127.0.0.15:8008/patroni", cafile="/etc/pgha/pki/ca.crt")
    make.assert_called_once_with(cafile="/etc/pgha/pki/ca.crt")
    assert seen["context"] is make.return_value


def test_request_over_https_without_its_ca_names_it(tmp_path):
    missing = str(tmp_path / "ca.crt")
    with pytest.raises(CommandExecutionError, match=f"https://127.0.0.15:8008/patroni: cannot use the CA {missing}"):
        cluster_util.request("https://127.0.0.15:8008/patroni", cafile=missing)


def test_request_returns_error_status_and_text():
    def urlopen(req, timeout, context):
        raise urllib.error.HTTPError(req.full_url, 412, "Precondition Failed", {},
                                     io.BytesIO(b"failover is not possible: no good candidates have been found"))

    with patch("urllib.request.urlopen", urlopen):
        status, body = cluster_util.request("http://127.0.0.15:8008/failover", method="POST", body={"candidate": "x"})
    assert (status, body) == (412, "failover is not possible: no good candidates have been found")


def test_request_unreachable_and_silent():
    def refused(req, timeout, context):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    def silent(req, timeout, context):
        raise TimeoutError("timed out")

    with patch("urllib.request.urlopen", refused), pytest.raises(CommandExecutionError, match="unreachable"):
        cluster_util.request("http://127.0.0.15:8008/cluster")
    with patch("urllib.request.urlopen", silent), pytest.raises(CommandExecutionError, match="no answer within 90 s"):
        cluster_util.request("http://127.0.0.15:8008/switchover", method="POST", body={}, timeout=90)


def test_message_of_an_error_page():
    assert cluster_util.message(error_page(503)) == "Service Unavailable."
    assert cluster_util.message("reload scheduled") == "reload scheduled"
    assert cluster_util.message({"a": 1}) == '{"a": 1}'
    assert cluster_util.message("") == "(empty answer)"


# ---------------------------------------------------------------------------
# the member model
# ---------------------------------------------------------------------------


def cluster_doc(leader: str = "postgres01", timeline: int = 3, lag: int = 0, states: dict | None = None,
                leader_role: str = "leader", replica_state: str = "running") -> dict:
    """A GET /cluster answer (the leader has no lag key); replicas 'running' (3.0.2) or 'streaming' (4.x)."""
    members = []
    for name, url in URLS.items():
        member = {"name": name, "role": leader_role if name == leader else "replica",
                  "state": (states or {}).get(name, "running" if name == leader else replica_state),
                  "api_url": f"{url}/patroni", "host": url.split("//")[1].split(":")[0], "port": 5432,
                  "timeline": timeline, "tags": {"nostream": False}}
        if name != leader:
            member["lag"] = lag
        members.append(member)
    return {"members": members}


def status_doc(replicas: tuple = ("postgres02", "postgres03"), timeline: int = 3, version: str = "4.1.5") -> dict:
    """A GET /patroni answer of the leader."""
    return {
        "state": "running", "role": "primary", "server_version": 150018, "timeline": timeline,
        "replication": [{"usename": "replicator", "application_name": name, "state": "streaming", "sync_state": "async"}
                        for name in replicas],
        "patroni": {"version": version, "scope": "postgres"},
    }


def member(name: str, role: str = "replica", state: str = "streaming", timeline: int | None = 5,
           lag: int | None = 0, streaming: bool | None = True) -> dict:
    return {"name": name, "role": role, "state": state, "timeline": timeline, "lag": lag, "streaming": streaming}


def healthy_members() -> list[dict]:
    return [member("postgres01", role="leader", state="running", streaming=False),
            member("postgres02", role="sync_standby"), member("postgres03", lag=512)]


def test_parse_members_normalises():
    parsed = cluster_util.parse_members(cluster_doc(lag=42), status_doc(("postgres02",))["replication"])
    assert [m["name"] for m in parsed] == ["postgres01", "postgres02", "postgres03"]
    leader, streaming, silent = parsed
    assert leader["role"] == "leader" and leader["lag"] == 0 and leader["timeline"] == 3
    assert streaming["lag"] == 42 and streaming["streaming"] is True
    assert silent["streaming"] is False
    # without the leader's replication list, streaming is unknown
    assert cluster_util.parse_members(cluster_doc())[1]["streaming"] is None


@pytest.mark.parametrize("role", ["leader", "standby_leader", "primary", "master"])
def test_parse_members_every_leader_role_is_a_leader(role):
    parsed = cluster_util.parse_members(cluster_doc(leader_role=role))
    assert [m["role"] for m in parsed] == ["leader", "replica", "replica"]


def test_parse_members_unknown_lag():
    doc = cluster_doc()
    doc["members"][1]["lag"] = "unknown"
    assert cluster_util.parse_members(doc)[1]["lag"] is None


def test_leader_of_needs_exactly_one_running_leader():
    assert cluster_util.leader_of(healthy_members())["name"] == "postgres01"
    stopped = healthy_members()
    stopped[0]["state"] = "stopped"
    assert cluster_util.leader_of(stopped) is None
    two = healthy_members()
    two[2].update(role="leader", state="running")
    assert cluster_util.leader_of(two) is None
    assert cluster_util.leader_of([]) is None


def test_health_healthy_with_patroni_4_and_3_states():
    assert cluster_util.health_problems(healthy_members(), 3, 1024) == []
    assert cluster_util.health_problems(healthy_members(), 3, 512) == []  # the bound itself is allowed
    running = [dict(m, state="running") for m in healthy_members()]  # Patroni 3.0.2's replicas
    assert cluster_util.health_problems(running, 3, 1024) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m[0].update(role="replica"), "expected exactly one leader, saw 0 (none)"),
        (lambda m: m[2].update(role="leader"), "expected exactly one leader, saw 2 (postgres01, postgres03)"),
        (lambda m: m[0].update(state="stopped"), "leader postgres01 is stopped, not running"),
        (lambda m: m.pop(), "expected 3 members, saw 2 (postgres01, postgres02)"),
        (lambda m: m[2].update(streaming=False), "postgres03 does not stream from the leader postgres01"),
        (lambda m: m[1].update(state="starting"), "postgres02 is starting"),
        (lambda m: m[2].update(timeline=4), "postgres03 is on timeline 4, the leader postgres01 on 5"),
        (lambda m: m[2].update(lag=2048), "postgres03 lags 2048 bytes (bound 1024)"),
        (lambda m: m[2].update(lag=None), "postgres03 lags None bytes (bound 1024)"),
    ],
)
def test_health_each_problem(change, problem):
    members = healthy_members()
    change(members)
    assert problem in cluster_util.health_problems(members, 3, 1024)


def test_health_reports_every_problem_at_once():
    members = healthy_members()
    members[1].update(streaming=False)
    members[2].update(lag=1 << 30)
    members.append(member("postgres04"))
    assert cluster_util.health_problems(members, 3, 1024) == [
        "expected 3 members, saw 4 (postgres01, postgres02, postgres03, postgres04)",
        "postgres02 does not stream from the leader postgres01",
        f"postgres03 lags {1 << 30} bytes (bound 1024)",
    ]


def test_health_unknown_streaming_passes():
    members = healthy_members()
    members[2]["streaming"] = None  # the leader's replication list could not be read
    assert cluster_util.health_problems(members, 3, 1024) == []


@pytest.mark.parametrize(
    "overrides",
    [{"state": "stopped"}, {"state": "starting"}, {"streaming": False}, {"timeline": 4}, {"timeline": None},
     {"lag": 1024}, {"lag": None}],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_follower_problems_each_violation(overrides):
    lead = member("postgres02", role="leader", state="running", streaming=False)
    assert cluster_util.follower_problems(member("postgres01"), lead, 0) == []
    assert cluster_util.follower_problems(member("postgres01", **overrides), lead, 0)


def test_rules_bundle_the_same_functions():
    rules = cluster_util.rules()
    assert rules.health_problems is cluster_util.health_problems
    assert rules.leader_of is cluster_util.leader_of
    assert rules.follower_problems is cluster_util.follower_problems


# ---------------------------------------------------------------------------
# the REST client
# ---------------------------------------------------------------------------


class FakeHTTP:
    """Stands in for pgha_cluster.request: answers by (method, URL), records every call."""

    def __init__(self) -> None:
        self.routes: dict = {}
        self.calls: list[dict] = []

    def on(self, method: str, url: str, *answers) -> FakeHTTP:
        self.routes[(method, url)] = list(answers)
        return self

    def __call__(self, url, method="GET", body=None, auth=None, timeout=3.0, cafile=None):
        self.calls.append({"url": url, "method": method, "body": body, "auth": auth, "timeout": timeout})
        answers = self.routes.get((method, url))
        if not answers:
            raise CommandExecutionError(f"{url} unreachable: [Errno 111] Connection refused")
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def fake_http(monkeypatch) -> FakeHTTP:
    fake = FakeHTTP()
    monkeypatch.setattr(cluster_util, "request", fake)
    return fake


@pytest.fixture
def api():
    return cluster_util.patroni_api(URLS, auth=("patroni", "rest-s3cret"))


def test_members_read_cluster_and_the_leaders_replication(fake_http, api):
    fake_http.on("GET", f"{URLS['postgres01']}/cluster", (200, cluster_doc()))
    fake_http.on("GET", f"{URLS['postgres01']}/patroni", (200, status_doc(("postgres02",))))
    found = api.members()
    assert [(m["name"], m["role"], m["streaming"]) for m in found] == [
        ("postgres01", "leader", False), ("postgres02", "replica", True), ("postgres03", "replica", False)]
    assert [c["url"] for c in fake_http.calls] == [f"{URLS['postgres01']}/cluster", f"{URLS['postgres01']}/patroni"]
    assert all(c["auth"] is None for c in fake_http.calls)


def test_members_ask_the_next_member_and_first_ones_first(fake_http, api):
    fake_http.on("GET", f"{URLS['postgres03']}/cluster", (200, cluster_doc("postgres03")))
    fake_http.on("GET", f"{URLS['postgres03']}/patroni", (200, status_doc(("postgres01", "postgres02"))))
    assert cluster_util.leader_of(api.members(first=["postgres03"]))["name"] == "postgres03"
    assert fake_http.calls[0]["url"] == f"{URLS['postgres03']}/cluster"
    fake_http.calls.clear()
    fake_http.routes.clear()
    fake_http.on("GET", f"{URLS['postgres02']}/cluster", (200, cluster_doc("postgres02")))
    assert cluster_util.leader_of(api.members())["name"] == "postgres02"
    assert [c["url"] for c in fake_http.calls][:2] == [f"{URLS['postgres01']}/cluster", f"{URLS['postgres02']}/cluster"]


def test_members_without_the_leaders_status_leave_streaming_unknown(fake_http, api):
    fake_http.on("GET", f"{URLS['postgres01']}/cluster", (200, cluster_doc()))
    assert [m["streaming"] for m in api.members()] == [None, None, None]


def test_members_streaming_from_a_leader_pillar_no_longer_lists(fake_http):
    # postgres01 leads while it is retired: pillar's URLs leave it out, Patroni's api_url still reaches it
    staying = cluster_util.patroni_api({k: v for k, v in URLS.items() if k != "postgres01"})
    fake_http.on("GET", f"{URLS['postgres02']}/cluster", (200, cluster_doc()))
    fake_http.on("GET", f"{URLS['postgres01']}/patroni", (200, status_doc(("postgres02", "postgres03"))))
    found = staying.members()
    assert [(m["name"], m["streaming"]) for m in found] == [
        ("postgres01", False), ("postgres02", True), ("postgres03", True)]


def test_cluster_no_member_answers(fake_http, api):
    with pytest.raises(CommandExecutionError, match="no member answered GET /cluster") as err:
        api.cluster()
    assert "127.0.0.6" in str(err.value)  # every member's reason is given


def test_call_raises_with_patronis_words_and_a_hint(fake_http, api):
    fake_http.on("POST", f"{URLS['postgres01']}/reload", (401, error_page(401)))
    with pytest.raises(CommandExecutionError) as err:
        api.call("postgres01", "/reload", method="POST", body={}, auth=True)
    assert "POST /reload on postgres01 answered 401: Unauthorized." in str(err.value)
    assert "pgha:secrets:restapi_password" in str(err.value)
    assert fake_http.calls[0]["auth"] == ("patroni", "rest-s3cret")


def test_call_of_an_unknown_member(api):
    with pytest.raises(CommandExecutionError, match="'postgres09' is not a PostgreSQL node"):
        api.call("postgres09", "/patroni")


def test_any_member_moves_on_only_when_unreachable(fake_http, api):
    fake_http.on("PATCH", f"{URLS['postgres02']}/config", (503, "Patroni could not do it"))
    fake_http.on("PATCH", f"{URLS['postgres03']}/config", (200, {"ttl": 20}))
    with pytest.raises(CommandExecutionError, match="answered 503"):
        api.any_member("/config", method="PATCH", body={"ttl": 20}, auth=True)
    assert [c["url"] for c in fake_http.calls] == [f"{URLS['postgres01']}/config", f"{URLS['postgres02']}/config"]


def test_versions_of_every_member(fake_http, api):
    fake_http.on("GET", f"{URLS['postgres01']}/patroni", (200, status_doc()))
    fake_http.on("GET", f"{URLS['postgres02']}/patroni", (503, {"state": "stopped", "patroni": {"version": "3.0.2"}}))
    assert api.versions() == {"postgres01": "4.1.5", "postgres02": "3.0.2", "postgres03": None}


def test_api_of_a_model_carries_the_rest_credentials():
    model = cluster_model()
    api = cluster_util.patroni_api_of(model)
    assert api.urls == model.restapi_urls and api.auth == ("patroni", TEST_SECRETS["restapi_password"])
    assert api.cafile == model.restapi_cafile == "/etc/pgha/pki/postgresql-ca.crt"


# ---------------------------------------------------------------------------
# HAProxy
# ---------------------------------------------------------------------------

# HAProxy 2.6's static CSV fields, the '-' separator and a few module fields.
HAPROXY_FIELDS = ["pxname", "svname", "qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout", "dreq", "dresp", "ereq", "econ", "eresp", "wretr", "wredis", "status", "weight", "act", "bck", "chkfail", "chkdown", "lastchg", "downtime", "qlimit", "pid", "iid", "sid", "throttle", "lbtot", "tracked", "type", "rate", "rate_lim", "rate_max", "check_status", "check_code", "check_duration", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "hanafail", "req_rate", "req_rate_max", "req_tot", "cli_abrt", "srv_abrt", "comp_in", "comp_out", "comp_byp", "comp_rsp", "lastsess", "last_chk", "last_agt", "qtime", "ctime", "rtime", "ttime", "agent_status", "agent_code", "agent_duration", "check_desc", "agent_desc", "check_rise", "check_fall", "check_health", "agent_rise", "agent_fall", "agent_health", "addr", "cookie", "mode", "algo", "conn_rate", "conn_rate_max", "conn_tot", "intercepted", "dcon", "dses", "wrew", "connect", "reuse", "cache_lookups", "cache_hits", "srv_icur", "src_ilim", "qtime_max", "ctime_max", "rtime_max", "ttime_max", "eint", "idle_conn_cur", "safe_conn_cur", "used_conn_cur", "need_conn_est", "uweight", "-", "ssl_sess", "ssl_reused_sess", "ssl_failed_handshake"]


def haproxy_csv(rows: list[dict]) -> str:
    """The text of GET /;csv or `show stat`: a '# '-prefixed header, a trailing comma on every line."""
    out = io.StringIO()
    out.write("# " + ",".join(HAPROXY_FIELDS) + ",\n")
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([row.get(field, "") for field in HAPROXY_FIELDS] + [""])
    return out.getvalue() + "\n"


def stats_text() -> str:
    return haproxy_csv([
        {"pxname": "stats", "svname": "FRONTEND", "status": "OPEN"},
        {"pxname": "stats", "svname": "BACKEND", "status": "UP"},
        {"pxname": "postgres", "svname": "FRONTEND", "status": "OPEN"},
        {"pxname": "postgres", "svname": "postgres01", "status": "UP", "addr": "10.131.0.15:5432", "weight": "1",
         "check_status": "L7OK", "check_code": "200", "scur": "3", "lastchg": "42"},
        {"pxname": "postgres", "svname": "postgres02", "status": "DOWN", "addr": "10.131.0.32:5432",
         "check_code": "503", "check_desc": "Layer7 wrong status"},
        {"pxname": "postgres", "svname": "postgres03", "status": "DOWN 1/2"},
        {"pxname": "postgres", "svname": "BACKEND", "status": "UP"},
        {"pxname": "postgres_replicas", "svname": "postgres02", "status": "UP"},
    ])


def test_parse_haproxy_stats_by_proxy():
    found = cluster_util.parse_haproxy_stats(stats_text())
    assert sorted(found) == ["postgres", "postgres_replicas"]  # 'stats' has no servers
    assert {name: e["status"] for name, e in found["postgres"].items()} == {
        "postgres01": "UP", "postgres02": "DOWN", "postgres03": "DOWN 1/2"}
    assert found["postgres"]["postgres01"] == {
        "status": "UP", "address": "10.131.0.15:5432", "weight": 1, "check_status": "L7OK", "check_code": 200,
        "check_desc": None, "sessions": 3, "last_change_s": 42}
    assert found["postgres"]["postgres02"]["check_code"] == 503
    assert found["postgres_replicas"] == {"postgres02": found["postgres_replicas"]["postgres02"]}
    assert cluster_util.parse_haproxy_stats("") == {}


@pytest.mark.parametrize(("status", "routed"), [("UP", True), ("UP 1/3", True), ("DOWN", False),
                                                 ("DOWN 1/2", False), ("DRAIN", False), ("MAINT", False),
                                                 (None, False)])
def test_routes(status, routed):
    assert cluster_util.routes(status) is routed


def haproxy_model(stats_bind: str = "10.131.0.3"):
    return cluster_model({"haproxy": {"stats_bind_address": stats_bind}})


def test_stats_url_on_the_bind_address_or_the_haproxy_node():
    assert haproxy_model().haproxy.stats_url == "http://10.131.0.3:8080/;csv"
    assert haproxy_model("*").haproxy.stats_url == "http://10.131.0.3:8080/;csv"
    assert haproxy_model("fd00::3").haproxy.stats_url == "http://[fd00::3]:8080/;csv"


def test_stats_page_with_the_pillars_credentials(fake_http):
    fake_http.on("GET", "http://10.131.0.3:8080/;csv", (200, stats_text()))
    found = cluster_util.haproxy_stats_page(haproxy_model())
    assert found["postgres"]["postgres01"]["status"] == "UP"
    assert fake_http.calls[0]["auth"] == ("stats", TEST_SECRETS["haproxy_stats_password"])


def test_stats_page_refusing_the_credentials_names_the_keys(fake_http):
    fake_http.on("GET", "http://10.131.0.3:8080/;csv", (401, "401 Unauthorized"))
    with pytest.raises(CommandExecutionError, match="pgha:secrets:haproxy_stats_password"):
        cluster_util.haproxy_stats_page(haproxy_model())


def test_stats_page_unreachable(fake_http):
    with pytest.raises(CommandExecutionError, match="HAProxy's stats page .* unreachable"):
        cluster_util.haproxy_stats_page(haproxy_model())


# ---------------------------------------------------------------------------
# the whole cluster: status, verdict, table
# ---------------------------------------------------------------------------


class FakeAPI:
    def __init__(self, members, versions=None, error=None):
        self._members, self._versions, self._error = members, versions or {}, error

    def members(self):
        if self._error:
            raise CommandExecutionError(self._error)
        return [dict(m) for m in self._members]

    def versions(self):
        return self._versions


def etcd_health(healthy: bool = True) -> dict:
    endpoints = {
        "etcd01": {"endpoint": "10.131.0.21:2379", "reachable": True, "leader": "etcd02", "raft_term": 7,
                   "raft_index": 1234, "db_size": 20480},
        "etcd02": {"endpoint": "10.131.0.22:2379", "reachable": True, "leader": "etcd02", "raft_term": 7,
                   "raft_index": 1234, "db_size": 20480},
        "etcd03": {"endpoint": "10.131.0.23:2379", "reachable": False, "error": "connection refused"},
    }
    if healthy:
        endpoints["etcd03"] = dict(endpoints["etcd01"], endpoint="10.131.0.23:2379")
    return {"healthy": healthy, "tls": True, "endpoints": endpoints}


def status_of(haproxy: dict | None = None, etcd_ok: bool = True, members=None) -> dict:
    api = FakeAPI(healthy_members() if members is None else members,
                  {"postgres01": "4.1.5", "postgres02": "4.1.5", "postgres03": "3.0.2"})
    servers = {"postgres01": "UP", "postgres02": "DOWN", "postgres03": "DOWN 1/2"} if haproxy is None else haproxy
    listeners = {"postgres": servers, "postgres_replicas": {"postgres01": "DOWN", "postgres02": "UP",
                                                            "postgres03": "UP"}}
    return cluster_util.cluster_status(api, lambda: etcd_health(etcd_ok), lambda: listeners)


def test_cluster_status_gathers_members_versions_etcd_and_haproxy():
    status = status_of()
    assert status["leader"] == "postgres01"
    assert [m["patroni_version"] for m in status["members"]] == ["4.1.5", "4.1.5", "3.0.2"]
    assert status["etcd"]["healthy"] is True
    assert status["haproxy"]["postgres"]["postgres01"] == "UP"


def test_cluster_status_says_what_it_could_not_read():
    def broken() -> dict:
        raise CommandExecutionError("pgha: minion etcd did not answer etcd_cluster.health within 30 s")

    api = FakeAPI([], error="patroni: no member answered GET /cluster")
    status = cluster_util.cluster_status(api, broken, broken)
    assert status["members"] == [] and status["leader"] is None
    assert status["etcd"] == {"healthy": False, "endpoints": {},
                              "error": "pgha: minion etcd did not answer etcd_cluster.health within 30 s"}
    assert "error" in status["haproxy"]


def test_cluster_problems_healthy_and_each_problem():
    assert cluster_util.cluster_problems(status_of(), 3, 1024) == []
    assert cluster_util.cluster_problems(status_of(etcd_ok=False), 3, 1024)[0].startswith("etcd is not healthy")
    both = status_of({"postgres01": "UP", "postgres02": "UP", "postgres03": "DOWN"})
    assert cluster_util.cluster_problems(both, 3, 1024) == [
        "HAProxy sends writes to ['postgres01', 'postgres02'], the leader is postgres01"]
    going = status_of({"postgres01": "DOWN", "postgres02": "UP 1/2", "postgres03": "DOWN"})
    assert "the leader is postgres01" in cluster_util.cluster_problems(going, 3, 1024)[0]
    broken = status_of()
    broken["haproxy"] = {"error": "pgha: HAProxy's stats page unreachable"}
    assert cluster_util.cluster_problems(broken, 3, 1024) == ["HAProxy: pgha: HAProxy's stats page unreachable"]


def sections(text: str) -> dict[str, list[list[str]]]:
    """The table's lines, split into whitespace-separated cells, by section."""
    out: dict[str, list[list[str]]] = {}
    current = ""
    for line in text.splitlines():
        if not line.startswith(" "):
            current = line
            out[current] = []
        else:
            out[current].append(line.split())
    return out


def test_status_table():
    members = healthy_members()
    members[2].update(lag=None, streaming=False, timeline=4)
    table = sections(cluster_util.status_table(status_of(members=members)))
    assert list(table) == ["Patroni members", "etcd: healthy (https)", "lock: free",
                           "HAProxy backends (listen postgres)", "HAProxy backends (listen postgres_replicas)"]
    rows = table["Patroni members"]
    assert rows[0] == ["member", "role", "state", "TL", "lag", "(bytes)", "streaming", "patroni"]
    assert rows[1:] == [
        ["postgres01", "leader", "running", "5", "0", "-", "4.1.5"],
        ["postgres02", "sync_standby", "streaming", "5", "0", "yes", "4.1.5"],
        ["postgres03", "replica", "streaming", "4", "NO", "3.0.2"],  # unknown lag: empty cell
    ]
    assert table["etcd: healthy (https)"][0][:4] == ["etcd01", "10.131.0.21:2379", "leader", "etcd02"]
    assert table["HAProxy backends (listen postgres)"] == [["postgres01", "UP"], ["postgres02", "DOWN"],
                                                           ["postgres03", "DOWN", "1/2"]]
    assert table["HAProxy backends (listen postgres_replicas)"] == [["postgres01", "DOWN"], ["postgres02", "UP"],
                                                                    ["postgres03", "UP"]]


def test_status_table_says_who_holds_the_lock():
    status = status_of(members=healthy_members())
    status["lock"] = {"command": "pgha.switchover", "master": "salt1", "pid": 4242, "since": "2026-12-04T10:00:00Z"}
    assert "lock: held by pgha.switchover (master salt1, pid 4242, since 2026-12-04T10:00:00Z)" in \
        cluster_util.status_table(status).splitlines()
    status["lock"] = {"error": "etcd: no endpoint answered"}
    assert "lock: NOT READ (etcd: no endpoint answered)" in cluster_util.status_table(status)


def test_status_table_unhealthy_etcd_and_no_members():
    status = status_of(etcd_ok=False, members=[])
    text = cluster_util.status_table(status)
    assert "etcd: NOT HEALTHY (https)" in text and "etcd: healthy" not in text
    assert "(no Patroni member answered)" in text
    etcd03 = next(line for line in text.splitlines() if "etcd03" in line)
    assert "UNREACHABLE" in etcd03 and "connection refused" in etcd03
    status["etcd"]["tls"] = False
    assert "etcd: NOT HEALTHY (http)" in cluster_util.status_table(status)
