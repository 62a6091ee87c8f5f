"""
Unit tests of the pgha_pooler execution module (_modules/pgha_pooler.py):
the admin console is reached through PgBouncer's socket as its own Unix
user, a pause that does not finish in time is undone, and resuming a pooler
that is not paused changes nothing.
"""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from pgha_test_helpers import load
from salt.exceptions import CommandExecutionError

pooler = load("_modules", "pgha_pooler")
MAP = {
    "pgbouncer": {"enabled": True, "port": 6432},
    "lookup": {"pgbouncer": {"user": "postgres", "socket_dir": "/lab/hosts/haproxy/var/run/postgresql"}},
}
CONSOLE = ["psql", "-X", "-A", "-t", "-F", "|", "-h", "/lab/hosts/haproxy/var/run/postgresql", "-p", "6432",
           "-U", "pgbouncer", "-d", "pgbouncer", "-c"]


class Console:
    """cmd.run_all for psql on PgBouncer's admin console; answers by command, records every call."""

    def __init__(self, answers: dict | None = None):
        self.answers, self.calls = answers or {}, []

    def __call__(self, cmd, python_shell=True, runas=None, timeout=None, ignore_retcode=False, **kwargs):
        self.calls.append({"cmd": list(cmd), "runas": runas, "timeout": timeout, "python_shell": python_shell})
        return self.answers.get(cmd[-1], {"retcode": 0, "stdout": "", "stderr": ""})


@pytest.fixture
def console():
    return Console()


@pytest.fixture
def configure_loader_modules(console):
    return {pooler: {"__salt__": {"cmd.run_all": console, "pgha_config.mapdata": MagicMock(return_value=MAP)},
                     "__context__": {}}}


def test_pause_through_the_socket_as_pgbouncers_own_user(console):
    result = pooler.pause(timeout=12)
    assert result["paused"] is True and result["took_s"] >= 0
    assert console.calls == [{"cmd": [*CONSOLE, "PAUSE"], "runas": "postgres", "timeout": 12.0, "python_shell": False}]


def test_a_pause_that_fails_is_undone(console):
    console.answers["PAUSE"] = {"retcode": -15, "stdout": "", "stderr": "Timed out after 12 seconds"}
    with pytest.raises(CommandExecutionError, match="PAUSE failed: Timed out after 12 seconds; PgBouncer was resumed"):
        pooler.pause(timeout=12)
    assert [call["cmd"][-1] for call in console.calls] == ["PAUSE", "RESUME"]


def test_resume_and_resume_when_not_paused(console):
    assert pooler.resume()["changed"] is True
    console.answers["RESUME"] = {"retcode": 1, "stdout": "", "stderr": "ERROR:  pooler is not paused/suspended"}
    assert pooler.resume() == {"paused": False, "changed": False}
    console.answers["RESUME"] = {"retcode": 2, "stdout": "", "stderr": "psql: error: connection to server failed"}
    with pytest.raises(CommandExecutionError, match="RESUME failed: psql: error"):
        pooler.resume()


def test_databases(console):
    console.answers["SHOW DATABASES"] = {"retcode": 0, "stderr": "", "stdout": (
        "name|host|port|database|force_user|pool_size|min_pool_size|reserve_pool|pool_mode|max_connections|"
        "current_connections|paused|disabled\n"
        "pgha|127.0.0.3|5432|pgha||20|0|0|transaction|0|1|1|0\n"
        "pgbouncer||6432|pgbouncer|pgbouncer|2|0|0|statement|0|0|0|0\n(2 rows)\n")}
    assert pooler.databases() == [
        {"name": "pgha", "host": "127.0.0.3", "port": "5432", "pool_mode": "transaction", "paused": True,
         "disabled": False},
        {"name": "pgbouncer", "host": None, "port": "6432", "pool_mode": "statement", "paused": False,
         "disabled": False}]
    assert "-t" not in console.calls[0]["cmd"]  # with its header: fields by name


def test_nothing_when_pgbouncer_is_off(console, monkeypatch):
    monkeypatch.setitem(pooler.__salt__, "pgha_config.mapdata", MagicMock(return_value=dict(MAP, pgbouncer={
        "enabled": False, "port": 6432})))
    with pytest.raises(CommandExecutionError, match="PgBouncer is not enabled"):
        pooler.pause()
    assert console.calls == []


def _haproxy(*answers):
    """pgha_haproxy.servers answering each look in turn (the last one from then on)."""
    looks = list(answers)

    def servers():
        return {"postgres": {name: {"status": status} for name, status in (looks.pop(0) if len(looks) > 1
                                                                            else looks[0]).items()}}
    return servers


def test_resume_when_routed_resumes_once_the_leader_port_leads_elsewhere(console, monkeypatch):
    monkeypatch.setattr(pooler, "ROUTE_POLL_S", 0.001)
    looks = _haproxy({"pg1": "UP", "pg2": "DOWN"}, {"pg1": "DOWN", "pg2": "DOWN"}, {"pg1": "UP 1/2", "pg2": "UP"},
                     {"pg1": "DOWN", "pg2": "UP"})
    monkeypatch.setitem(pooler.__salt__, "pgha_haproxy.servers", looks)
    result = pooler.resume_when_routed(away_from="pg1", timeout=5)
    # not while the old leader is still up, nor while two servers are: once pg2 alone takes the writes
    assert result["routed_to"] == "pg2" and result["changed"] is True
    assert [call["cmd"][-1] for call in console.calls] == ["RESUME"]


def test_resume_when_routed_resumes_anyway_after_its_timeout(console, monkeypatch):
    monkeypatch.setattr(pooler, "ROUTE_POLL_S", 0.01)
    monkeypatch.setitem(pooler.__salt__, "pgha_haproxy.servers", _haproxy({"pg1": "UP", "pg2": "DOWN"}))
    with pytest.raises(CommandExecutionError, match="did not route away from pg1 within 0.1 s .UP: pg1.; "
                                                    "PgBouncer resumed"):
        pooler.resume_when_routed(away_from="pg1", timeout=0.1)
    assert [call["cmd"][-1] for call in console.calls] == ["RESUME"]
