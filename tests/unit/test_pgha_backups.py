"""
Unit tests of _utils/pgha_backups.py and _utils/pgha_restore.py: what the
repository holds and how archiving goes, as pgha.backups, pgha.status and
pgha.check show and judge it; the orchestration's stage that makes the
repository ready; restore targets read and checked against the repository
before anything is touched; the in-place restore's order. The cluster is
reached through a fake (tests/pgha_test_helpers.FakeReach) with the
production pillar's model (a backup node, ``backup``).
"""

from __future__ import annotations

import base64

import pytest
from pgha_test_helpers import FakeReach, cluster_model, load
from salt.exceptions import CommandExecutionError

backups = load("_utils", "pgha_backups")
restore = load("_utils", "pgha_restore")

NOW = 1_800_000_000.0
LEADER = [{"name": "postgres01", "role": "leader", "state": "running", "timeline": 3, "lag": 0},
          {"name": "postgres02", "role": "sync_standby", "state": "streaming", "timeline": 3, "lag": 0},
          {"name": "postgres03", "role": "replica", "state": "streaming", "timeline": 3, "lag": 0}]


def info_entry(label: str, kind: str, stop: float) -> dict:
    return {"label": label, "type": kind, "timestamp": {"start": int(stop) - 30, "stop": int(stop)},
            "info": {"size": 30_000_000, "repository": {"delta": 6_000_000, "size": 6_000_000}},
            "archive": {"start": "000000030000000000000008", "stop": "000000030000000000000009"},
            "lsn": {"start": "0/8000028", "stop": "0/9000050"}, "error": False}


def stanza(*entries: dict, code: int = 0, message: str = "ok") -> dict:
    return {"name": "postgres", "status": {"code": code, "message": message},
            "archive": [{"min": "000000010000000000000001", "max": "00000003000000000000000A"}],
            "backup": list(entries)}


def archiver(**changes) -> dict:
    found = {"archived_count": 40, "last_archived_wal": "00000003000000000000000A", "last_archived_time": NOW - 30,
             "failed_count": 0, "last_failed_wal": None, "last_failed_time": None, "in_recovery": False,
             "archive_mode": "on", "waiting": 0, "oldest_waiting_s": None}
    return dict(found, **changes)


def reach_with(info: dict, archiver_answer: dict | None = None, members=LEADER, **handlers) -> FakeReach:
    answers = {"pgha_backup.info": lambda minion, **kw: info,
               "pgha_backup.archiver": lambda minion, **kw: archiver_answer or archiver()}
    answers.update(handlers)
    return FakeReach(cluster_model(), members=lambda: [dict(m) for m in members], handlers=answers)


def test_facts_sum_up_the_repository_and_the_leaders_archiver():
    reach = reach_with(stanza(info_entry("20261204-010000F", "full", NOW - 7200),
                              info_entry("20261204-010000F_20261204-020000I", "incr", NOW - 1800)))
    data = backups.facts(reach, now=NOW)
    assert [entry["label"] for entry in data["backups"]] == ["20261204-010000F", "20261204-010000F_20261204-020000I"]
    assert data["newest_backup_age_s"] == 1800 and data["leader"] == "postgres01" and data["node"] == "backup"
    assert data["backups"][0]["duration_s"] == 30 and data["repository_size"] == 12_000_000
    assert data["max_age_s"] == 7200  # twice the hourly incrementals of the production pillar
    assert ("backup", "pgha_backup.info") in reach.calls and ("postgres01", "pgha_backup.archiver") in reach.calls
    assert backups.problems(data) == []
    assert backups.line(data, now=NOW).startswith("backups: newest incr 20261204-010000F_20261204-020000I, 30 min old")
    assert backups.line(data, now=NOW).endswith("(repository on backup, 2 backups)")
    one = backups.facts(reach_with(stanza(info_entry("20261204-010000F", "full", NOW - 7200))), now=NOW)
    assert backups.line(one, now=NOW).endswith("(repository on backup, 1 backup)")
    assert "20261204-010000F_20261204-020000I  incr" in backups.table(data)


@pytest.mark.parametrize(("info", "arch", "problem"), [
    (stanza(code=1, message="missing stanza path"), None, "stanza postgres not ready on backup: missing stanza path"),
    (stanza(), None, "the repository on backup holds no backup"),
    (stanza(info_entry("20261204-010000F", "full", NOW - 3 * 3600)), None,
     "the newest backup is 3.0 h old; the schedule allows 2.0 h"),
    (stanza(info_entry("20261204-010000F", "full", NOW - 60)),
     archiver(failed_count=3, last_failed_wal="00000003000000000000000B", last_failed_time=NOW - 5),
     "WAL archiving fails on postgres01: 3 failures, the last on 00000003000000000000000B"),
    (stanza(info_entry("20261204-010000F", "full", NOW - 60)), archiver(waiting=9, oldest_waiting_s=600),
     "WAL archiving is stuck on postgres01: 9 segments wait, the oldest for 600 s"),
])
def test_problems_pgha_check_reports(info, arch, problem):
    (found,) = backups.problems(backups.facts(reach_with(info, arch), now=NOW))
    assert problem in found


def test_an_old_failure_followed_by_successes_is_no_problem():
    arch = archiver(failed_count=2, last_failed_wal="000000030000000000000005", last_failed_time=NOW - 600)
    data = backups.facts(reach_with(stanza(info_entry("20261204-010000F", "full", NOW - 60)), arch), now=NOW)
    assert backups.problems(data) == []


def test_no_backup_node_no_facts():
    reach = FakeReach(cluster_model({"nodes": {"backup": {"roles": ["postgresql"]}}}))  # no node has the role
    with pytest.raises(CommandExecutionError, match="the cluster has no backup node"):
        backups.facts(reach)


def test_ready_creates_the_stanza_checks_and_takes_the_first_full_backup():
    taken = []
    reach = reach_with(stanza(),
                       **{"pgha_backup.stanza_create": lambda minion, **kw: {"stanza": "postgres"},
                          "pgha_backup.check": lambda minion, **kw: {"ok": True},
                          "pgha_backup.backup": lambda minion, **kw: taken.append(kw) or {"label": "L1F"}})
    result = backups.ready(reach, timeout=30)
    assert result["ok"] is True and result["first_backup"]["label"] == "L1F"
    assert [call[1] for call in reach.calls] == ["pgha_backup.stanza_create", "pgha_backup.check",
                                                 "pgha_backup.info", "pgha_backup.backup"]
    assert taken[0]["type"] == "full" and all(call[0] == "backup" for call in reach.calls)


def test_ready_keeps_a_repository_that_has_backups_and_waits_for_the_archive(monkeypatch):
    monkeypatch.setattr(backups.time, "sleep", lambda s: None)
    tries = []

    def check(minion, **kw):
        tries.append(1)
        if len(tries) < 3:
            raise CommandExecutionError("WAL segment 000000010000000000000005 was not archived before the timeout")
        return {"ok": True}

    reach = reach_with(stanza(info_entry("L1F", "full", NOW)), **{
        "pgha_backup.stanza_create": lambda minion, **kw: {}, "pgha_backup.check": check})
    result = backups.ready(reach, timeout=30)
    assert result["ok"] is True and "first_backup" not in result and len(tries) == 3


def test_ready_fails_naming_what_pgbackrest_said():
    def check(minion, **kw):
        raise CommandExecutionError("ERROR: [082]: WAL segment was not archived before the 60000ms timeout")

    reach = reach_with(stanza(), **{"pgha_backup.stanza_create": lambda minion, **kw: {},
                                    "pgha_backup.check": check})
    with pytest.raises(CommandExecutionError, match=r"pgbackrest check on backup fails after 0 s: .*\[082\]"):
        backups.ready(reach, timeout=0)


# ---------------------------------------------------------------------------
# restore targets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("latest", "default", None),
    ("immediate", "immediate", None),
    ("2026-12-04 10:41:07", "time", "2026-12-04 10:41:07.000000+00"),
    ("2026-12-04T10:41", "time", "2026-12-04 10:41:00.000000+00"),
    ("2026-12-04 12:41:07+02", "time", "2026-12-04 10:41:07.000000+00"),
    ("2026-12-04 05:41:07-05:00", "time", "2026-12-04 10:41:07.000000+00"),
    ("2026-12-04 10:41:07Z", "time", "2026-12-04 10:41:07.000000+00"),
    ("before-migration", "name", "before-migration"),
])
def test_restore_targets(text, kind, value):
    target = restore.target_of(text)
    assert (target.type, target.value) == (kind, value)


@pytest.mark.parametrize(("text", "why"), [
    ("", "target must be latest, immediate, a time"),
    ("2026-13-04 10:41:07", "is not a valid time"),
    ("drop table; --", "is neither latest, immediate, a time"),
    (None, "target must be latest"),
])
def test_bad_restore_targets(text, why):
    with pytest.raises(ValueError, match=why):
        restore.target_of(text)


def facts_of(*entries, arch=None) -> dict:
    return backups.facts(reach_with(stanza(*entries), arch), now=NOW)


def test_a_target_the_repository_cannot_reach_is_refused_naming_why():
    first = info_entry("20261204-010000F", "full", NOW - 86400)
    at = restore.target_of
    stamp = "2027-01-14 07:00:00"  # NOW is 2027-01-15 08:00:00 UTC, the first backup ended a day before
    assert "before the first backup ended (20261204-010000F" in restore.problems(at(stamp), facts_of(first), now=NOW)[0]
    assert restore.problems(at("2099-01-01 00:00:00"), facts_of(first), now=NOW) == [
        "target 2099-01-01 00:00:00 is in the future"]
    late = at("2027-01-15 07:59:50")  # after the last archived WAL (30 s ago)
    assert "after the last archived WAL (00000003000000000000000A" in restore.problems(late, facts_of(first), now=NOW)[0]
    assert restore.problems(at("2027-01-15 07:50:00"), facts_of(first), now=NOW) == []
    assert "holds no backup" in restore.problems(at("latest"), facts_of(), now=NOW)[0]
    assert restore.problems(at("some-point"), facts_of(first), now=NOW) == []


def test_restore_into_a_new_instance_goes_to_a_replica_and_explains_a_point_not_found():
    asked = []

    def restore_call(minion, **kw):
        asked.append((minion, kw))
        raise CommandExecutionError("pgha_backup.restore: the restored instance stopped: FATAL:  recovery ended "
                                    "before configured recovery target was reached")

    reach = reach_with(stanza(info_entry("L1F", "full", NOW - 600)), **{"pgha_backup.restore": restore_call})
    facts = backups.facts(reach, now=NOW)
    with pytest.raises(CommandExecutionError, match="restore point 'nowhere' was not reached"):
        restore.into_new(reach, restore.target_of("nowhere"), None, "r1", facts, timeout=60)
    assert asked[0][0] == "postgres02" and asked[0][1]["target_type"] == "name"


def test_restore_into_a_new_instance_refused_touching_nothing():
    reach = reach_with(stanza())  # no backup: no restore call may happen
    with pytest.raises(CommandExecutionError, match="holds no backup.*nothing was restored"):
        restore.into_new(reach, restore.target_of("latest"), None, "r1", backups.facts(reach), timeout=60)
    assert not [call for call in reach.calls if call[1] == "pgha_backup.restore"]


def test_restore_names():
    assert restore.name_of(None, now=NOW) == "restore-20270115-080000"
    assert restore.name_of("before-migration") == "before-migration"
    with pytest.raises(ValueError, match="name must be lowercase letters"):
        restore.name_of("../etc")


class FakeEtcd:
    def __init__(self, keys):
        self.keys, self.deleted = list(keys), []

    def post(self, path, body):
        if path == "/v3/kv/range":
            return {"kvs": [{"key": base64.b64encode(key.encode()).decode()} for key in self.keys]}
        assert path == "/v3/kv/deleterange"
        self.deleted.append(base64.b64decode(body["key"]).decode())
        return {}


def test_in_place_restore_order_keeps_the_lock_and_moves_data_aside():
    etcd = FakeEtcd(["/db/postgres/leader", "/db/postgres/initialize", "/db/postgres/members/postgres01",
                     "/db/postgres/pgha-lock"])
    handlers = {
        "pgha_service.stop": lambda minion, *a, **kw: {}, "pgha_service.start": lambda minion, *a, **kw: {},
        "pgha_backup.restore_in_place": lambda minion, **kw: {"restore_s": 1.0, "timeline": 4},
        "patroni.wait_leader": lambda minion, **kw: {}, "pgha_backup.backup": lambda minion, **kw: {"label": "L2F"},
        "pgha_backup.move_data_aside": lambda minion, **kw: {"moved_to": "/var/lib/patroni.before-restore-x"},
        "patroni.wait_healthy": lambda minion, **kw: {"leader": "postgres01", "timeline": 5}}
    reach = reach_with(stanza(info_entry("L1F", "full", NOW - 600)), **handlers)
    reach._etcd = etcd
    result = restore.in_place(reach, restore.target_of("before-migration"), backups.facts(reach, now=NOW), 60)
    assert result["ok"] is True and result["leader"] == "postgres01"
    assert etcd.deleted == ["/db/postgres/leader", "/db/postgres/initialize", "/db/postgres/members/postgres01"]
    order = [(call[0], call[1]) for call in reach.calls if call[1] not in ("pgha_backup.info", "pgha_backup.archiver")]
    assert order == [
        ("postgres02", "pgha_service.stop"), ("postgres03", "pgha_service.stop"), ("postgres01", "pgha_service.stop"),
        ("postgres01", "pgha_backup.restore_in_place"), ("postgres01", "pgha_service.start"),
        ("postgres01", "patroni.wait_leader"), ("backup", "pgha_backup.backup"),
        ("postgres02", "pgha_backup.move_data_aside"), ("postgres02", "pgha_service.start"),
        ("postgres03", "pgha_backup.move_data_aside"), ("postgres03", "pgha_service.start"),
        ("postgres01", "patroni.wait_healthy")]


def test_in_place_refused_before_anything_when_the_target_is_out_of_reach():
    reach = reach_with(stanza(info_entry("L1F", "full", NOW - 600)))
    with pytest.raises(CommandExecutionError, match="is in the future; nothing was changed"):
        restore.in_place(reach, restore.target_of("2099-01-01 00:00"), backups.facts(reach, now=NOW), 60)
    assert {call[1] for call in reach.calls} == {"pgha_backup.info", "pgha_backup.archiver"}
