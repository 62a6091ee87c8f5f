"""
Unit tests of the pgha_backup execution module (_modules/pgha_backup.py):
pgBackRest run as the host's own pgBackRest user with the formula's
configuration and stanza, a backup from a standby falling back to the
leader when none answers, the repository read with a wrong passphrase
named as such, restores' arguments checked before anything is written,
PostgreSQL's archiver read. ``cmd.run_all`` is a fake that records each
command and answers by the command's last word; the map is the real model
of the production pillar as the minion sees it.
"""

from __future__ import annotations

import json

import pytest
from pgha_test_helpers import cluster_model, load, utils
from salt.exceptions import CommandExecutionError

module = load("_modules", "pgha_backup")

INFO = [{"name": "postgres", "status": {"code": 0, "message": "ok"}, "repo": [{"status": {"code": 0}}],
         "backup": [{"label": "20261204-010000F", "type": "full", "timestamp": {"start": 1, "stop": 2},
                     "info": {"size": 10, "repository": {"delta": 5}}}]}]
NEW = {"label": "20261204-010000F_20261204-020000I", "type": "incr", "timestamp": {"start": 3, "stop": 4},
       "info": {"size": 12, "repository": {"delta": 1}}}


class Shell:
    """
    cmd.run_all: answers by the command's last word, or a word in it (a
    query); a list of answers is used in turn. Records every call.
    """

    def __init__(self):
        self.answers: dict = {}
        self.calls: list[dict] = []

    def __call__(self, cmd, python_shell=True, runas=None, env=None, timeout=None, **kwargs):
        self.calls.append({"cmd": list(cmd), "runas": runas, "env": env, "python_shell": python_shell})
        keys = [key for key in self.answers if key == cmd[-1] or key in cmd[-1]]
        answer = self.answers[keys[0]] if keys else {"retcode": 0, "stdout": "", "stderr": ""}
        if isinstance(answer, list):
            answer = answer.pop(0)
        return dict(answer)


@pytest.fixture
def shell():
    return Shell()


def mapdata(minion: str) -> dict:
    return cluster_model(minion_id=minion).as_map(show_secrets=True)


@pytest.fixture
def configure_loader_modules(shell):
    return {module: {"__salt__": {"cmd.run_all": shell}, "__context__": {}, "__utils__": utils("pgha_pgbackrest")}}


def on(minion: str) -> None:
    module.__context__.clear()
    module.__salt__["pgha_config.mapdata"] = lambda: mapdata(minion)


def ok(stdout: str = "") -> dict:
    return {"retcode": 0, "stdout": stdout, "stderr": ""}


def test_info_as_the_repositorys_owner_with_the_formulas_configuration(shell):
    on("backup")
    shell.answers["info"] = ok(json.dumps(INFO))
    assert module.info()["backup"][0]["label"] == "20261204-010000F"
    call = shell.calls[0]
    assert call["runas"] == "pgbackrest" and call["env"] == {} and call["python_shell"] is False
    assert call["cmd"][:3] == ["/usr/bin/pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=postgres"]


def test_a_wrong_passphrase_is_named():
    on("backup")
    garbled = [dict(INFO[0], repo=[{"status": {"code": 99, "message": "[FormatError] unable to load info file "
                                               "'/var/lib/pgbackrest/backup/postgres/backup.info': \x01\x02"}}])]
    module.__salt__["cmd.run_all"].answers["info"] = ok(json.dumps(garbled))
    with pytest.raises(CommandExecutionError, match=r"the passphrase \(secrets:backup_cipher_password\) is not the one"):
        module.info()


def test_backup_from_a_standby_falls_back_to_the_leader_when_none_answers(shell):
    on("backup")
    shell.answers["info"] = [ok(json.dumps(INFO)), ok(json.dumps([dict(INFO[0], backup=INFO[0]["backup"] + [NEW])]))]
    shell.answers["backup"] = [{"retcode": 56, "stdout": "", "stderr": "ERROR: [056]: unable to find standby cluster"},
                               ok()]
    result = module.backup(type="incr")
    assert result["label"] == NEW["label"] and result["from"] == "leader"
    backups = [call["cmd"] for call in shell.calls if call["cmd"][-1] == "backup"]
    assert backups[0][-3:] == ["--type=incr", "--backup-standby", "backup"]
    assert backups[1][-3:] == ["--type=incr", "--no-backup-standby", "backup"]


def test_backup_type_and_node_are_checked_first(shell):
    on("backup")
    with pytest.raises(CommandExecutionError, match="type must be one of full, diff, incr"):
        module.backup(type="weekly")
    on("postgres01")
    with pytest.raises(CommandExecutionError, match="runs on the backup node"):
        module.backup(type="full")
    assert shell.calls == []


def test_a_failed_command_says_pgbackrests_own_error(shell):
    on("backup")
    shell.answers["stanza-create"] = {"retcode": 28, "stdout": "", "stderr": (
        "ERROR: [028]: backup and archive info files exist but do not match the database\n"
        "       HINT: is this the correct stanza?\n")}
    with pytest.raises(CommandExecutionError, match=r"stanza-create on backup failed \(28\): ERROR: \[028\]: backup "
                                                    r"and archive info files exist but do not match.*correct stanza"):
        module.stanza_create()


def test_stanza_create_waits_while_an_archive_push_holds_the_lock_and_no_longer_than_its_timeout(shell, monkeypatch):
    on("backup")
    monkeypatch.setattr(module.time, "sleep", lambda seconds: None)
    held = {"retcode": 50, "stdout": "", "stderr": (
        "ERROR: [050]: unable to acquire lock on file '/tmp/pgbackrest/postgres-archive.lock': Resource temporarily "
        "unavailable\n       HINT: is another pgBackRest process running?\n")}
    shell.answers["stanza-create"] = [held, held, {"retcode": 0, "stdout": "", "stderr": ""}]
    assert module.stanza_create()["stanza"] == "postgres"
    assert [call["cmd"][-1] for call in shell.calls] == ["stanza-create"] * 3
    shell.answers["stanza-create"] = [held] * 3
    with pytest.raises(CommandExecutionError, match=r"stanza-create on backup failed \(50\): .*unable to acquire lock"):
        module.stanza_create(timeout=0)


def test_archiver_of_a_postgresql_node(shell):
    on("postgres01")
    fields = ["12", "00000001000000000000000A", "1796400000", "1", "000000010000000000000007", "1796399000",
              "f", "on", "2", "40", "end"]
    row = "\t".join(fields)
    shell.answers = {"pg_stat_archiver": ok(row)}
    found = module.archiver()
    assert found == {"archived_count": 12, "last_archived_wal": "00000001000000000000000A",
                     "last_archived_time": 1796400000, "failed_count": 1, "last_failed_wal": "000000010000000000000007",
                     "last_failed_time": 1796399000, "in_recovery": False, "archive_mode": "on", "waiting": 2,
                     "oldest_waiting_s": 40}
    call = shell.calls[0]
    assert call["runas"] == "postgres" and call["env"] == {"PGPASSFILE": "/var/lib/postgresql/.pgpass.pgbackrest"}
    assert call["cmd"][call["cmd"].index("-h") + 1] == "/var/run/postgresql"


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"name": "../x"}, "name must be lowercase letters"),
    ({"name": "r1", "target_type": "xid", "target": "5"}, "target_type must be one of"),
    ({"name": "r1", "target_type": "time"}, "target_type time needs a target"),
    ({"name": "r1", "target_type": "default", "target": "x"}, "target_type default takes no target"),
])
def test_restore_arguments_are_checked_before_anything_is_written(shell, tmp_path, kwargs, why):
    on("postgres02")
    with pytest.raises(CommandExecutionError, match=why):
        module.restore(**kwargs)
    assert shell.calls == []


def test_a_restore_of_that_name_that_exists_is_refused(shell, tmp_path, monkeypatch):
    on("postgres02")
    (tmp_path / "r1").mkdir()
    monkeypatch.setattr(module, "_restore_dir", lambda name: str(tmp_path / name))
    with pytest.raises(CommandExecutionError, match="a restore named 'r1' is there"):
        module.restore(name="r1")
    assert shell.calls == []


def test_in_place_restore_refused_while_postgresql_runs(shell, tmp_path, monkeypatch):
    import os

    on("postgres01")
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n/var/lib/patroni\n")
    monkeypatch.setitem(module.__context__, "pgha_backup.map", dict(
        mapdata("postgres01"), lookup=dict(mapdata("postgres01")["lookup"], patroni=dict(
            mapdata("postgres01")["lookup"]["patroni"], data_dir=str(tmp_path)))))
    with pytest.raises(CommandExecutionError, match=r"PostgreSQL runs on .* stop Patroni first"):
        module.restore_in_place(target_type="name", target="before-migration")
    with pytest.raises(CommandExecutionError, match="stop Patroni first"):
        module.move_data_aside()
    assert shell.calls == []
    assert (tmp_path / "postmaster.pid").exists()


def test_in_place_restore_starts_postgresql_with_the_clusters_archive_command(shell, tmp_path, monkeypatch):
    """The restored node archives its new timeline as Patroni's configuration would: through pgha-archive-push."""
    on("postgres01")
    monkeypatch.setitem(module.__context__, "pgha_backup.map", dict(
        mapdata("postgres01"), lookup=dict(mapdata("postgres01")["lookup"], patroni=dict(
            mapdata("postgres01")["lookup"]["patroni"], data_dir=str(tmp_path)))))
    shell.answers.update({"SELECT pg_is_in_recovery()": ok("f\n"),
                          "SELECT timeline_id FROM pg_control_checkpoint()": ok("4\n")})
    assert module.restore_in_place(target_type="name", target="before-migration", timeout=30)["timeline"] == 4
    start = next(call["cmd"] for call in shell.calls if call["cmd"][-1] == "start")
    options = start[start.index("-o") + 1]
    assert ("archive_command='/usr/local/sbin/pgha-archive-push /usr/bin/pgbackrest "
            "--config=/etc/pgbackrest/pgbackrest.conf --stanza=postgres archive-push %p'") in options
