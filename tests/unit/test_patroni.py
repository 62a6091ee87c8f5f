"""
Unit tests of the patroni execution module (_modules/patroni.py).

The loader's dunders come from ``configure_loader_modules``, ``__utils__``
holding the real shared REST client (_utils/pgha_cluster.py). HTTP is
mocked at the shared ``request`` (one function every call goes through):
the tests assert on the exact method, URL, body, authentication and timeout
sent, on the parsing of Patroni's answers (shapes taken from a live 3.0.2
cluster) and on each error path; a last group talks real HTTP to a stand-in
REST API on 127.0.0.1.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from unittest.mock import MagicMock, patch

import pytest
from pgha_test_helpers import cluster_model, load, utils
from salt.exceptions import CommandExecutionError

patroni_module = load("_modules", "patroni")

URLS = {
    "postgres01": "http://127.0.0.15:8008",
    "postgres02": "http://127.0.0.32:8008",
    "postgres03": "http://127.0.0.6:8008",
}
# postgres01's map (a real model's): the REST API over http with the pillar's credentials, the package's patronictl.
MAP = cluster_model(
    {"patroni": {"restapi_tls": False}, "lookup": {"root": "/srv/pgha/{id}", "patroni": {
        "install": "package", "patronictl": "/usr/bin/patronictl"}},
     "secrets": {"restapi_password": "rest-s3cret", "haproxy_stats_password": "stats-s3cret"}},
    minion_id="postgres01", addresses={"postgres01": "127.0.0.15", "postgres02": "127.0.0.32", "postgres03": "127.0.0.6"},
).as_map(show_secrets=True)


def cluster_doc(leader: str = "postgres01", timeline: int = 3, lag: int = 0, states: dict | None = None) -> dict:
    """A GET /cluster answer of Patroni 3.0.2 (the leader has no lag key)."""
    members = []
    for name, url in URLS.items():
        host = url.split("//")[1].split(":")[0]
        member = {
            "name": name,
            "role": "leader" if name == leader else "replica",
            "state": (states or {}).get(name, "running"),
            "api_url": f"{url}/patroni",
            "host": host,
            "port": 5432,
            "timeline": timeline,
            "tags": {"nostream": False},
        }
        if name != leader:
            member["lag"] = lag
        members.append(member)
    return {"members": members}


def status_doc(replicas: tuple = ("postgres02", "postgres03"), timeline: int = 3) -> dict:
    """A GET /patroni answer of the leader."""
    return {
        "state": "running",
        "role": "master",
        "server_version": 150018,
        "timeline": timeline,
        "replication": [
            {"usename": "replicator", "application_name": name, "state": "streaming", "sync_state": "async"}
            for name in replicas
        ],
        "patroni": {"version": "3.0.2", "scope": "postgres"},
    }


CONFIG = {
    "ttl": 20,
    "loop_wait": 2,
    "retry_timeout": 5,
    "maximum_lag_on_failover": 1048576,
    "synchronous_mode": True,
    "postgresql": {
        "use_pg_rewind": True,
        "parameters": {"max_connections": 100, "wal_level": "replica", "hot_standby": "on"},
    },
}


def error_page(code: int) -> str:
    """The body of Patroni's send_error(code): Python's default error page."""
    message, explain = http.server.BaseHTTPRequestHandler.responses[code]
    return http.server.DEFAULT_ERROR_MESSAGE % {"code": code, "message": message, "explain": explain}


@dataclass
class Call:
    method: str
    url: str
    data: Any
    auth: bool
    timeout: float


class FakeAPI:
    """Stands in for the shared HTTP request (pgha_cluster.request): answers by (method, url), records every call."""

    def __init__(self) -> None:
        self.routes: dict = {}
        self.calls: list[Call] = []

    def on(self, method: str, url: str, *answers: Any) -> FakeAPI:
        self.routes[(method, url)] = list(answers)
        return self

    def __call__(self, url, method="GET", body=None, auth=None, timeout=3.0, cafile=None):
        self.calls.append(Call(method, url, json.loads(json.dumps(body)) if body is not None else None,
                               auth == ("patroni", "rest-s3cret"), timeout))
        answers = self.routes.get((method, url))
        if not answers:
            raise CommandExecutionError(f"{url} unreachable: [Errno 111] Connection refused")
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def writes(self) -> list[Call]:
        return [call for call in self.calls if call.method != "GET"]


@pytest.fixture
def configure_loader_modules():
    return {
        patroni_module: {
            "__salt__": {
                "pgha_config.mapdata": MagicMock(return_value=json.loads(json.dumps(MAP))),
                "patroni.members": patroni_module.members,
                "cmd.run_all": MagicMock(),
            },
            "__utils__": utils("pgha_cluster", "pgha_model", "pgha_dcs"),
            "__context__": {},
            "__opts__": {"test": False, "id": "postgres01"},
            "__grains__": {"id": "postgres01"},
            # Salt's deferred log handler would flush into pytest's closed streams at exit
            "log": MagicMock(),
        }
    }


@pytest.fixture
def patroni(monkeypatch):
    """The module, its dunders in place; waits do not sleep (restored after the test)."""
    monkeypatch.setattr(patroni_module.time, "sleep", MagicMock())
    return patroni_module


@pytest.fixture
def api(patroni, monkeypatch):
    fake = FakeAPI()
    monkeypatch.setattr(load("_utils", "pgha_cluster"), "request", fake)
    return fake


def healthy_cluster(api: FakeAPI, leader: str = "postgres01") -> FakeAPI:
    replicas = tuple(name for name in URLS if name != leader)
    for url in URLS.values():
        api.on("GET", f"{url}/cluster", (200, cluster_doc(leader)))
    api.on("GET", f"{URLS[leader]}/patroni", (200, status_doc(replicas)))
    return api


AUTH = "Basic " + base64.b64encode(b"patroni:rest-s3cret").decode()


# ---------------------------------------------------------------------------
# loading and plumbing
# ---------------------------------------------------------------------------


def test_virtual_loads_without_patronictl_on_path(patroni):
    # patronictl lives in pgha's virtualenv (pgha:lookup:patroni:patronictl), not on PATH
    with patch("salt.utils.path.which", return_value=None):
        assert patroni.__virtual__() == "patroni"


def test_mapdata_is_read_once_with_secrets(patroni, api):
    healthy_cluster(api)
    patroni.leader()
    patroni.leader()
    patroni.__salt__["pgha_config.mapdata"].assert_called_once_with(show_secrets=True)


# ---------------------------------------------------------------------------
# reading the cluster (existing functions)
# ---------------------------------------------------------------------------


def test_members_reads_cluster_and_leader_replication(patroni, api):
    healthy_cluster(api)
    found = patroni.members()
    assert [(m["name"], m["role"], m["streaming"]) for m in found] == [
        ("postgres01", "leader", False),  # not in its own replication list
        ("postgres02", "replica", True),
        ("postgres03", "replica", True),
    ]
    assert [c.url for c in api.calls] == [
        "http://127.0.0.15:8008/cluster",
        "http://127.0.0.15:8008/patroni",
    ]
    assert not any(c.auth for c in api.calls)


def test_members_falls_back_to_next_member(patroni, api):
    api.on("GET", "http://127.0.0.32:8008/cluster", (200, cluster_doc("postgres02")))
    api.on("GET", "http://127.0.0.32:8008/patroni", (200, status_doc(("postgres03",))))
    found = patroni.members()
    assert next(m for m in found if m["role"] == "leader")["name"] == "postgres02"


def test_members_no_member_answers(patroni, api):
    with pytest.raises(CommandExecutionError, match="no member answered GET /cluster"):
        patroni.members()


def test_leader(patroni, api):
    healthy_cluster(api, "postgres03")
    assert patroni.leader() == "postgres03"


def test_leader_none_when_leader_not_running(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/cluster", (200, cluster_doc(states={"postgres01": "stopped"})))
    assert patroni.leader() is None


def test_wait_leader_waits_for_the_named_member(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/cluster", (200, cluster_doc("postgres01")), (200, cluster_doc("postgres02")))
    seen = patroni.wait_leader(timeout=30, member="postgres02")
    assert seen["leader"] == "postgres02" and seen["timeline"] == 3
    assert patroni.time.sleep.call_count == 1


def test_wait_leader_times_out_with_what_it_saw(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/cluster", (200, cluster_doc("postgres01")))
    with pytest.raises(CommandExecutionError, match=r"expected postgres02 leading within 0 s; saw: postgres01=leader"):
        patroni.wait_leader(timeout=0, member="postgres02")


def test_wait_healthy(patroni, api):
    healthy_cluster(api)
    seen = patroni.wait_healthy(members=3, max_lag=0, timeout=5)
    assert seen["leader"] == "postgres01"
    assert len(seen["members"]) == 3


def test_wait_healthy_fails_with_problems(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/cluster", (200, cluster_doc(lag=5)))
    api.on("GET", "http://127.0.0.15:8008/patroni", (200, status_doc(("postgres02",))))
    with pytest.raises(CommandExecutionError) as err:
        patroni.wait_healthy(members=3, max_lag=0, timeout=0)
    assert "postgres03 does not stream from the leader postgres01" in str(err.value)
    assert "lags 5 bytes" in str(err.value)


def test_health_of_a_member(patroni, api):
    healthy_cluster(api)
    api.on("GET", "http://127.0.0.32:8008/patroni",
           (200, {"state": "running", "role": "replica", "timeline": 3, "pending_restart": True, "server_version": 150018}))
    seen = patroni.health("postgres02")
    assert seen == {
        "name": "postgres02",
        "role": "replica",
        "state": "running",
        "timeline": 3,
        "lag": 0,
        "pending_restart": True,
        "paused": False,
        "server_version": 150018,
    }


def test_health_of_an_unknown_member(patroni, api):
    with pytest.raises(CommandExecutionError, match="'postgres09' is not a PostgreSQL node"):
        patroni.health("postgres09")


# ---------------------------------------------------------------------------
# switchover and failover
# ---------------------------------------------------------------------------


def test_switchover_posts_to_the_leader(patroni, api):
    healthy_cluster(api)
    api.on("POST", "http://127.0.0.15:8008/switchover", (200, 'Successfully switched over to "postgres02"'))
    before = time.time()
    result = patroni.switchover(candidate="postgres02")
    requested_at = result.pop("requested_at")
    assert before <= requested_at <= time.time()
    assert result == {"old_leader": "postgres01", "candidate": "postgres02",
                      "message": 'Successfully switched over to "postgres02"'}
    (write,) = api.writes()
    assert write.data == {"leader": "postgres01", "candidate": "postgres02"}
    assert write.auth is True
    assert write.timeout == patroni.SWITCH_TIMEOUT


def test_switchover_away_from_a_leader_pillar_no_longer_lists(patroni, api):
    """Scaling in: the leader being retired is not in restapi_urls; another member records the request."""
    doc = cluster_doc(leader="nobody")
    doc["members"].append({"name": "postgres04", "role": "leader", "state": "running", "host": "127.0.0.40",
                           "port": 5432, "timeline": 3, "api_url": "http://127.0.0.40:8008/patroni"})
    for url in URLS.values():
        api.on("GET", f"{url}/cluster", (200, doc))
    api.on("POST", "http://127.0.0.15:8008/switchover", (200, 'Successfully switched over to "postgres02"'))
    result = patroni.switchover(candidate="postgres02")
    assert result["old_leader"] == "postgres04"
    (write,) = api.writes()
    assert write.url == "http://127.0.0.15:8008/switchover"
    assert write.data == {"leader": "postgres04", "candidate": "postgres02"}


def test_switchover_scheduled(patroni, api):
    healthy_cluster(api)
    api.on("POST", "http://127.0.0.15:8008/switchover", (202, "Switchover scheduled"))
    result = patroni.switchover(scheduled_at="2030-01-01T02:00:00+00:00")
    assert result["message"] == "Switchover scheduled"
    assert api.writes()[0].data == {"leader": "postgres01", "scheduled_at": "2030-01-01T02:00:00+00:00"}


def test_switchover_refused_carries_patronis_message(patroni, api):
    healthy_cluster(api)
    api.on("POST", "http://127.0.0.15:8008/switchover", (412, "candidate name does not match with sync_standby"))
    with pytest.raises(CommandExecutionError, match="answered 412: candidate name does not match with sync_standby"):
        patroni.switchover(candidate="postgres03")


def test_switchover_without_leader(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/cluster", (200, cluster_doc(states={"postgres01": "stopped"})))
    with pytest.raises(CommandExecutionError, match="needs a running leader"):
        patroni.switchover()
    assert api.writes() == []


def test_failover_posts_to_the_candidate_with_auth(patroni, api):
    healthy_cluster(api)
    api.on("POST", "http://127.0.0.32:8008/failover", (200, 'Successfully failed over to "postgres02"'))
    result = patroni.failover("postgres02")
    assert result == {"old_leader": "postgres01", "candidate": "postgres02",
                      "message": 'Successfully failed over to "postgres02"'}
    (write,) = api.writes()
    assert (write.method, write.url, write.data, write.auth) == (
        "POST", "http://127.0.0.32:8008/failover", {"candidate": "postgres02"}, True)
    assert write.timeout == patroni.SWITCH_TIMEOUT


def test_failover_412_no_good_candidates(patroni, api):
    healthy_cluster(api)
    api.on("POST", "http://127.0.0.32:8008/failover",
           (412, "failover is not possible: no good candidates have been found"))
    with pytest.raises(CommandExecutionError) as err:
        patroni.failover("postgres02")
    assert "POST /failover on postgres02 answered 412" in str(err.value)
    assert "failover is not possible: no good candidates have been found" in str(err.value)


def test_failover_503_carries_patronis_message(patroni, api):
    healthy_cluster(api)
    api.on("POST", "http://127.0.0.32:8008/failover", (503, "Failover failed"))
    with pytest.raises(CommandExecutionError, match="answered 503: Failover failed"):
        patroni.failover("postgres02")


def test_failover_candidate_unreachable_goes_through_another_member(patroni, api):
    # No leader answers; the candidate's API is down; postgres01 relays.
    api.on("GET", "http://127.0.0.15:8008/cluster", (200, cluster_doc(states={"postgres01": "stopped"})))
    api.on("POST", "http://127.0.0.15:8008/failover", (200, 'Successfully failed over to "postgres03"'))
    result = patroni.failover("postgres03")
    assert result["old_leader"] is None
    patroni.log.warning.assert_not_called()  # /cluster answered: the leader is known to be gone
    assert [c.url for c in api.writes()] == ["http://127.0.0.6:8008/failover", "http://127.0.0.15:8008/failover"]


def test_failover_nobody_answers(patroni, api):
    with pytest.raises(CommandExecutionError, match="no member answered POST /failover"):
        patroni.failover("postgres02")
    assert "cannot tell the current leader" in patroni.log.warning.call_args[0][0]


def test_failover_to_the_leader_is_refused(patroni, api):
    healthy_cluster(api)
    with pytest.raises(CommandExecutionError, match="postgres01 already leads"):
        patroni.failover("postgres01")
    assert api.writes() == []


def test_failover_to_an_unknown_member(patroni, api):
    with pytest.raises(CommandExecutionError, match="not a PostgreSQL node"):
        patroni.failover("postgres09")
    assert api.calls == []


# ---------------------------------------------------------------------------
# restart, reload, reinit
# ---------------------------------------------------------------------------


def test_restart_this_node(patroni, api):
    api.on("POST", "http://127.0.0.15:8008/restart", (200, "restarted successfully"))
    assert patroni.restart() == {"member": "postgres01", "restarted": True, "message": "restarted successfully"}
    (write,) = api.writes()
    assert (write.data, write.auth, write.timeout) == ({}, True, patroni.RESTART_TIMEOUT)


def test_restart_pending_only_with_timeout(patroni, api):
    api.on("POST", "http://127.0.0.6:8008/restart", (200, "restarted successfully"))
    patroni.restart(member="postgres03", pending_only=True, timeout=60)
    (write,) = api.writes()
    assert write.url == "http://127.0.0.6:8008/restart"
    assert write.data == {"restart_pending": True, "timeout": 60}
    assert write.timeout == 90


def test_restart_pending_only_when_nothing_pending(patroni, api):
    api.on("POST", "http://127.0.0.6:8008/restart", (503, "restart conditions are not satisfied"))
    assert patroni.restart(member="postgres03", pending_only=True) == {
        "member": "postgres03", "restarted": False, "message": "no restart pending"}


def test_restart_failure(patroni, api):
    api.on("POST", "http://127.0.0.15:8008/restart", (503, "restart already in progress"))
    with pytest.raises(CommandExecutionError, match="POST /restart on postgres01 answered 503: restart already in progress"):
        patroni.restart()


def test_restart_unreachable(patroni, api):
    with pytest.raises(CommandExecutionError, match="127.0.0.32:8008/restart unreachable"):
        patroni.restart("postgres02")


def test_reload(patroni, api):
    api.on("POST", "http://127.0.0.32:8008/reload", (202, "reload scheduled"))
    assert patroni.reload("postgres02") == {"member": "postgres02", "message": "reload scheduled"}
    (write,) = api.writes()
    assert (write.auth, write.data) == (True, {})


def test_reload_unauthorised_gives_a_hint(patroni, api):
    api.on("POST", "http://127.0.0.15:8008/reload", (401, "not authenticated"))
    with pytest.raises(CommandExecutionError) as err:
        patroni.reload()
    assert "answered 401: not authenticated" in str(err.value)
    assert "pgha:secrets:restapi_password" in str(err.value)


def test_reinit(patroni, api):
    api.on("POST", "http://127.0.0.6:8008/reinitialize", (200, "reinitialize started"))
    assert patroni.reinit("postgres03") == {"member": "postgres03", "message": "reinitialize started"}
    (write,) = api.writes()
    assert (write.url, write.data, write.auth) == ("http://127.0.0.6:8008/reinitialize", {"force": False}, True)


def test_reinit_of_the_leader_is_refused(patroni, api):
    api.on("POST", "http://127.0.0.15:8008/reinitialize", (503, "I am the leader, can not reinitialize"))
    with pytest.raises(CommandExecutionError, match="I am the leader, can not reinitialize"):
        patroni.reinit("postgres01")


def test_reinit_needs_a_member(patroni, api):
    with pytest.raises(CommandExecutionError, match="needs the member"):
        patroni.reinit("")


# ---------------------------------------------------------------------------
# dynamic configuration
# ---------------------------------------------------------------------------


def test_show_config(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    assert patroni.show_config() == CONFIG
    assert api.calls[0].auth is False


def test_show_config_asks_the_next_member(patroni, api):
    api.on("GET", "http://127.0.0.32:8008/config", (200, CONFIG))
    assert patroni.show_config() == CONFIG
    assert [c.url for c in api.calls] == ["http://127.0.0.15:8008/config", "http://127.0.0.32:8008/config"]


def test_show_config_without_dcs_config(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (502, error_page(502)))
    with pytest.raises(CommandExecutionError) as err:
        patroni.show_config()
    assert "answered 502: Bad Gateway." in str(err.value)
    assert "DCS holds no configuration" in str(err.value)


def test_config_changes_mirrors_patronis_patch(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    changes = patroni.config_changes({
        "ttl": "20",  # compares as text, as Patroni does: no change
        "loop_wait": 3,
        "synchronous_mode": None,  # removal
        "failsafe_mode": None,  # absent already: no change
        "postgresql": {"parameters": {"max_connections": 200, "wal_level": "replica", "work_mem": "8MB"}},
    })
    assert changes == {
        "old": {"loop_wait": 2, "synchronous_mode": True,
                "postgresql": {"parameters": {"max_connections": 100, "work_mem": None}}},
        "new": {"loop_wait": 3, "synchronous_mode": None,
                "postgresql": {"parameters": {"max_connections": 200, "work_mem": "8MB"}}},
    }
    assert api.writes() == []


def test_config_changes_needs_a_map(patroni, api):
    with pytest.raises(CommandExecutionError, match="non-empty map"):
        patroni.config_changes("ttl=30")


def test_edit_config_patches_and_returns_changed_keys(patroni, api):
    after = json.loads(json.dumps(CONFIG))
    after["postgresql"]["parameters"]["max_connections"] = 200
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    api.on("PATCH", "http://127.0.0.15:8008/config", (200, after))
    settings = {"ttl": 20, "postgresql": {"parameters": {"max_connections": 200}}}
    result = patroni.edit_config(settings)
    assert result == {
        "old": {"postgresql": {"parameters": {"max_connections": 100}}},
        "new": {"postgresql": {"parameters": {"max_connections": 200}}},
    }
    (write,) = api.writes()
    assert (write.method, write.url, write.data, write.auth) == (
        "PATCH", "http://127.0.0.15:8008/config", settings, True)


def test_edit_config_nothing_to_change_writes_nothing(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    assert patroni.edit_config({"ttl": 20, "postgresql": {"use_pg_rewind": True}}) == {"old": {}, "new": {}}
    assert api.writes() == []


def test_edit_config_503(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    api.on("PATCH", "http://127.0.0.15:8008/config", (503, error_page(503)))
    with pytest.raises(CommandExecutionError) as err:
        patroni.edit_config({"ttl": 30})
    assert "PATCH /config on postgres01 answered 503: Service Unavailable." in str(err.value)


def test_edit_config_409(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    api.on("PATCH", "http://127.0.0.15:8008/config", (409, error_page(409)))
    with pytest.raises(CommandExecutionError, match="changed meanwhile"):
        patroni.edit_config({"ttl": 30})


def test_edit_config_needs_a_map(patroni, api):
    with pytest.raises(CommandExecutionError, match="non-empty map"):
        patroni.edit_config({})
    assert api.calls == []


def test_pause(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    api.on("PATCH", "http://127.0.0.15:8008/config", (200, dict(CONFIG, pause=True)))
    assert patroni.pause() == {"paused": True, "changed": True}
    (write,) = api.writes()
    assert (write.data, write.auth) == ({"pause": True}, True)


def test_pause_when_paused(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, dict(CONFIG, pause=True)))
    assert patroni.pause() == {"paused": True, "changed": False}
    assert api.writes() == []


def test_resume(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, dict(CONFIG, pause=True)))
    api.on("PATCH", "http://127.0.0.15:8008/config", (200, dict(CONFIG, pause=False)))
    assert patroni.resume() == {"paused": False, "changed": True}
    assert api.writes()[0].data == {"pause": False}


def test_resume_when_running(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/config", (200, CONFIG))
    assert patroni.resume() == {"paused": False, "changed": False}
    assert api.writes() == []


def test_pause_unreachable(patroni, api):
    with pytest.raises(CommandExecutionError, match="no member answered GET /config"):
        patroni.pause()


# ---------------------------------------------------------------------------
# history and patronictl
# ---------------------------------------------------------------------------


def test_history(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/history", (200, [
        [1, 25165984, "no recovery target specified"],
        [2, 67345864, "no recovery target specified", "2026-11-27T22:01:29.294762+00:00"],
        [3, 67513392, "no recovery target specified", "2026-11-27T22:02:49.382765+00:00", "postgres01"],
    ]))
    assert patroni.history() == [
        {"timeline": 1, "lsn": 25165984, "reason": "no recovery target specified", "timestamp": None,
         "new_leader": None},
        {"timeline": 2, "lsn": 67345864, "reason": "no recovery target specified",
         "timestamp": "2026-11-27T22:01:29.294762+00:00", "new_leader": None},
        {"timeline": 3, "lsn": 67513392, "reason": "no recovery target specified",
         "timestamp": "2026-11-27T22:02:49.382765+00:00", "new_leader": "postgres01"},
    ]


def test_history_empty_and_bad(patroni, api):
    api.on("GET", "http://127.0.0.15:8008/history", (200, []))
    assert patroni.history() == []
    api.on("GET", "http://127.0.0.15:8008/history", (200, "oops"))
    with pytest.raises(CommandExecutionError, match="did not answer a list"):
        patroni.history()


CTL_JSON = json.dumps([
    {"Cluster": "postgres", "Member": "postgres01", "Host": "127.0.0.15", "Role": "Leader", "State": "running",
     "TL": 3},
    {"Cluster": "postgres", "Member": "postgres02", "Host": "127.0.0.32", "Role": "Sync Standby",
     "State": "streaming", "TL": 3, "Lag in MB": 0, "Pending restart": "*"},
    {"Cluster": "postgres", "Member": "postgres03", "Host": "127.0.0.6", "Role": "Replica", "State": "stopped",
     "Lag in MB": "unknown", "Tags": {"nofailover": True}},
])


def test_list_ctl(patroni):
    run_all = patroni.__salt__["cmd.run_all"]
    run_all.return_value = {"retcode": 0, "stdout": CTL_JSON, "stderr": ""}
    found = patroni.list_ctl()
    run_all.assert_called_once_with(
        ["/usr/bin/patronictl", "-c", "/srv/pgha/postgres01/etc/patroni/config.yml", "list", "-f", "json"],
        python_shell=False, ignore_retcode=True, timeout=patroni.CTL_TIMEOUT,
    )
    assert found[0] == {"cluster": "postgres", "member": "postgres01", "host": "127.0.0.15", "role": "Leader",
                        "state": "running", "timeline": 3, "lag_mb": None, "pending_restart": False,
                        "scheduled_restart": None, "tags": {}}
    assert found[1]["pending_restart"] is True and found[1]["lag_mb"] == 0
    assert found[2]["timeline"] is None and found[2]["lag_mb"] is None and found[2]["tags"] == {"nofailover": True}


def test_list_ctl_failure(patroni):
    patroni.__salt__["cmd.run_all"].return_value = {
        "retcode": 1, "stdout": "", "stderr": "Traceback...\npatroni.exceptions.DCSError: Etcd is not accessible"}
    with pytest.raises(CommandExecutionError, match=r"failed \(1\): patroni.exceptions.DCSError: Etcd is not accessible"):
        patroni.list_ctl()


def test_list_ctl_not_json(patroni):
    patroni.__salt__["cmd.run_all"].return_value = {"retcode": 0, "stdout": "+ Cluster: postgres +", "stderr": ""}
    with pytest.raises(CommandExecutionError, match="printed no JSON"):
        patroni.list_ctl()


# ---------------------------------------------------------------------------
# over real HTTP: a stand-in REST API answering the way Patroni's handler does
# ---------------------------------------------------------------------------


class PatroniLikeHandler(http.server.BaseHTTPRequestHandler):
    """Answers as Patroni 3.0.2's RestApiHandler: _write_response text, send_error pages, 401 on no auth."""

    seen: ClassVar[list] = []

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def _answer(self, status: int, text: str, content_type: str = "text/html") -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def do_GET(self):
        self.seen.append(("GET", self.path, None, self.headers.get("Authorization")))
        self._answer(200, json.dumps(CONFIG), "application/json")

    def do_POST(self):
        self.seen.append(("POST", self.path, self._body(), self.headers.get("Authorization")))
        if self.headers.get("Authorization") != AUTH:
            self._answer(401, "no auth header received")
        elif self.path == "/failover":
            self._answer(412, "failover is not possible: no good candidates have been found")
        else:
            self._answer(202, "reload scheduled")

    def do_PATCH(self):
        self.seen.append(("PATCH", self.path, self._body(), self.headers.get("Authorization")))
        self.send_error(503)


@pytest.fixture
def live_api(patroni):
    server = http.server.HTTPServer(("127.0.0.1", 0), PatroniLikeHandler)
    PatroniLikeHandler.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    cfg = json.loads(json.dumps(MAP))
    cfg["restapi_urls"]["postgres01"] = f"http://127.0.0.1:{server.server_port}"
    patroni.__context__["patroni.map"] = cfg
    yield PatroniLikeHandler.seen
    server.shutdown()
    server.server_close()


def test_over_http_get_and_write_with_auth(patroni, live_api):
    assert patroni.show_config() == CONFIG
    assert patroni.reload() == {"member": "postgres01", "message": "reload scheduled"}
    assert live_api == [("GET", "/config", None, None), ("POST", "/reload", {}, AUTH)]


def test_over_http_412_text_and_503_error_page(patroni, live_api, monkeypatch):
    monkeypatch.setattr(patroni, "leader", lambda: "postgres02")
    with pytest.raises(CommandExecutionError, match="answered 412: failover is not possible: no good candidates"):
        patroni.failover("postgres01")
    with pytest.raises(CommandExecutionError, match=r"PATCH /config on postgres01 answered 503: Service Unavailable\."):
        patroni.edit_config({"ttl": 30})
    assert live_api[-1] == ("PATCH", "/config", {"ttl": 30}, AUTH)


def test_over_http_wrong_password(patroni, live_api):
    patroni.__context__["patroni.map"]["secrets"]["restapi_password"] = "wrong"
    with pytest.raises(CommandExecutionError, match="answered 401: no auth header received"):
        patroni.reload()


def test_local_tells_whether_the_host_holds_the_clusters_data(patroni, tmp_path):
    data_dir = tmp_path / "patroni"
    patroni.__salt__["pgha_config.mapdata"].return_value = dict(MAP, lookup={"patroni": {"data_dir": str(data_dir)}})
    assert patroni.local() == {"data_dir": str(data_dir), "initialized": False}
    data_dir.mkdir()  # the state makes the directory before Patroni's first start: still no database
    assert patroni.local()["initialized"] is False
    (data_dir / "PG_VERSION").write_text("15\n")
    assert patroni.local() == {"data_dir": str(data_dir), "initialized": True}
