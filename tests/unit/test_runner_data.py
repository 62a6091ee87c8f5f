"""
Unit tests of the runner's commands for getting data back
(_runners/pgha_data.py, in the ``pgha`` namespace): every argument checked
and refused in one line before the lock is taken or a minion reached; an
in-place restore without ``confirm=True`` refused with its reason, nothing
touched; a command's failure exits non-zero; each command that changes
the cluster or its repository holds the cluster's lock.
"""

from __future__ import annotations

import copy

import pytest
import salt.config
from pgha_test_helpers import cluster_model, load, utils

data = load("_runners", "pgha_data")
UTILS = ("pgha_args", "pgha_backups", "pgha_restore", "pgha_runner", "pgha_model")
MODEL = cluster_model()


def forbidden(what: str):
    def boom(*args, **kwargs):
        raise AssertionError(f"{what} must not be called here (args={args!r}, kwargs={kwargs!r})")

    return boom


@pytest.fixture
def configure_loader_modules():
    options = copy.deepcopy(salt.config.DEFAULT_MASTER_OPTS)
    options.update({"conf_file": "/etc/salt/master", "output": None, "id": "saltmaster_master"})
    shared = utils(*UTILS)
    return {data: {"__opts__": options, "__context__": {}, "__salt__": {}, "__utils__": shared}}


@pytest.fixture
def untouchable(monkeypatch):
    """The model is there; the lock, the minions and the cluster are not to be touched."""
    monkeypatch.setattr(data, "_cluster", lambda: MODEL)
    monkeypatch.setattr(data, "_reach", forbidden("_reach"))
    data.__utils__["pgha_runner.take"] = forbidden("the cluster's lock")


def one_line(answer: dict, function: str) -> str:
    body = answer["data"] if "outputter" in answer else answer
    assert data.__context__["retcode"] == 1 and body["retcode"] == 1
    line = body[f"pgha.{function}"]
    assert "\n" not in line and "Traceback" not in line
    return line


@pytest.mark.parametrize(("function", "kwargs", "expected"), [
    ("backup", {"type": "weekly"}, "type must be one of full, diff, incr (got 'weekly')"),
    ("backup", {"timeout": 5}, "timeout must be between 60 and 86400 seconds (got 5)"),
    ("backups", {"table": "maybe"}, "table must be true or false (got 'maybe')"),
    ("restore", {"target": "drop table x"}, "is neither latest, immediate, a time"),
    ("restore", {"target": "2026-12-04 25:00:00"}, "is not a valid time"),
    ("restore", {"in_place": "perhaps"}, "in_place must be true or false (got 'perhaps')"),
    ("restore", {"name": "Bad Name"}, "name must be lowercase letters"),
    ("restore", {"in_place": True, "confirm": True, "host": "postgres02"}, "host and name are for a restore into"),
    ("restore_drill", {"mode": "everything"}, "mode must be one of point, latest, repo-outage (got 'everything')"),
    ("restore_drill", {"host": "etcd"}, "host must be a PostgreSQL node (postgres01, postgres02, postgres03)"),
    ("restore_drill", {"keep": "sometimes"}, "keep must be true or false (got 'sometimes')"),
    ("backup_ready", {"timeout": "long"}, "timeout must be a number of seconds (got 'long')"),
])
def test_bad_arguments_are_refused_in_one_line_before_anything_is_touched(untouchable, function, kwargs, expected):
    assert expected in one_line(getattr(data, function)(**kwargs), function)


def test_in_place_without_confirm_is_refused_and_changes_nothing(untouchable):
    line = one_line(data.restore(target="latest", in_place=True), "restore")
    assert line.startswith("restoring the cluster in place stops Patroni on every node")
    assert "give confirm=True to do it. Nothing was changed" in line


class Lock:
    def __init__(self):
        self.taken, self.released, self.lost = [], False, None

    def __call__(self, cluster, master, command, args, wait):
        self.taken.append((command, args))
        return self

    def release(self):
        self.released = True
        return True


def test_a_backup_holds_the_lock_and_a_failure_exits_non_zero(monkeypatch):
    lock = Lock()
    monkeypatch.setattr(data, "_cluster", lambda: MODEL)
    monkeypatch.setattr(data, "_reach", lambda: "reach")
    data.__utils__["pgha_runner.take"] = lock
    data.__utils__["pgha_backups.take"] = lambda reach, kind, limit: {"ok": True, "label": "L1F", "type": kind}
    assert data.backup(type="full")["label"] == "L1F"
    assert lock.taken == [("pgha.backup", {"type": "full"})] and lock.released
    assert "retcode" not in data.__context__
    data.__utils__["pgha_backups.take"] = lambda reach, kind, limit: {"ok": False, "comment": "no"}
    assert data.backup(type="incr")["retcode"] == 1 and data.__context__["retcode"] == 1
