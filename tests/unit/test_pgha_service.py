"""
Unit tests of _modules/pgha_service.py and _states/pgha_service.py: the
commands built for supervisord and systemd (exact argument lists), a
changed supervisord program definition left pending for a service that
reloads (Patroni, HAProxy) and applied by a restart, and the state's returns
in both modes.

The dunders are injected by pytest-salt-factories' ``configure_loader_modules``;
``cmd.run_all`` is a fake supervisorctl/systemctl that records each command.
"""

from __future__ import annotations

import copy
import os
import subprocess
from unittest.mock import MagicMock

import pytest
from pgha_test_helpers import load
from salt.exceptions import CommandExecutionError

pgha_service = load("_modules", "pgha_service")
pgha_service_state = load("_states", "pgha_service")

SUPERVISORCTL = "/usr/bin/supervisorctl"
CONF = "/lab/hosts/postgres01/etc/pgha/supervisord.conf"
CTL = [SUPERVISORCTL, "-c", CONF]
MAP = {
    "lookup": {
        "service_manager": "supervisord",
        "supervisor": {"supervisorctl": SUPERVISORCTL, "conf_file": CONF},
        "etcd": {"service": "etcd"},
        "patroni": {"service": "patroni", "data_dir": "/lab/hosts/postgres01/var/lib/patroni"},
        "haproxy": {"service": "haproxy"},
    }
}
NOTHING_NEW = "No config updates to processes\n"


class ServiceManager:
    """cmd.run_all of a host: answers supervisorctl and systemctl, records every command."""

    def __init__(self, reread: str = NOTHING_NEW, pids: dict | None = None, fail: tuple = ()):
        self.reread = reread
        self.pids = {"patroni": 4242, "etcd": 3131} if pids is None else pids
        self.fail = fail
        self.commands: list[list[str]] = []

    def __call__(self, cmd, python_shell=True, ignore_retcode=False, **kwargs):
        assert python_shell is False, cmd
        self.commands.append(list(cmd))
        if tuple(cmd[3:5]) in self.fail or tuple(cmd[:2]) in self.fail:
            return {"retcode": 2, "stdout": "", "stderr": f"ERROR ({cmd[-1]})"}
        if cmd[:3] == CTL:
            return self.supervisorctl(cmd[3:])
        if cmd[:4] == ["systemctl", "show", "--property=MainPID", "--value"]:
            return {"retcode": 0, "stdout": f"{self.pids.get(cmd[4], 0)}\n", "stderr": ""}
        assert cmd[0] in ("systemctl", "/usr/bin/supervisord"), cmd
        return {"retcode": 0, "stdout": "", "stderr": ""}

    def supervisorctl(self, args: list[str]) -> dict:
        verb = args[0]
        if verb == "reread":
            return {"retcode": 0, "stdout": self.reread, "stderr": ""}
        if verb == "pid":
            pid = self.pids.get(args[1], 0)
            return {"retcode": 0 if pid else 1, "stdout": f"{pid}\n", "stderr": ""}
        if verb == "update":
            return {"retcode": 0, "stdout": "".join(f"{n}: updated process group\n" for n in args[1:]), "stderr": ""}
        return {"retcode": 0, "stdout": f"{args[-1]}: {verb}ed\n", "stderr": ""}

    def after_reread(self) -> list[list[str]]:
        """The supervisorctl arguments of every command."""
        return [cmd[3:] for cmd in self.commands if cmd[:3] == CTL]


@pytest.fixture
def manager_map():
    return copy.deepcopy(MAP)


@pytest.fixture
def host():
    return ServiceManager()


@pytest.fixture
def configure_loader_modules(manager_map, host):
    return {
        pgha_service: {
            "__salt__": {"cmd.run_all": host, "pgha_config.mapdata": MagicMock(return_value=manager_map)},
            "__context__": {},
            "__opts__": {"test": False},
        },
        pgha_service_state: {"__salt__": {}, "__context__": {}, "__opts__": {"test": False}},
    }


def systemd(manager_map: dict) -> None:
    manager_map["lookup"]["service_manager"] = "systemd"


# ---------------------------------------------------------------------------
# the execution module: supervisord
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reread", "service", "expected"),
    [
        ("patroni: changed\netcd: available\n", "patroni", "changed"),
        ("patroni: changed\netcd: available\n", "etcd", "added"),
        ("patroni: changed\n", "haproxy", None),
        ("patroni: disappeared\n", "patroni", None),
        (NOTHING_NEW, "patroni", None),
    ],
)
def test_pending(host, reread, service, expected):
    host.reread = reread
    assert pgha_service.pending(service) == expected
    assert host.commands == [CTL + ["reread"]]


def test_pending_unknown_service(host):
    with pytest.raises(CommandExecutionError, match="unknown service 'postgresql'"):
        pgha_service.pending("postgresql")
    assert host.commands == []


def test_map_read_once(host):
    pgha_service.pending("patroni")
    pgha_service.status("patroni")
    assert pgha_service.__salt__["pgha_config.mapdata"].call_count == 1


def test_update_one_program(host):
    assert pgha_service.update("etcd") == {"changed": ["etcd"]}
    assert host.commands == [CTL + ["reread"], CTL + ["update", "etcd"]]


def test_update_every_program(host):
    pgha_service.update()
    assert host.commands == [CTL + ["reread"], CTL + ["update"]]


def test_restart_applies_a_pending_definition(host):
    host.reread = "patroni: changed\n"
    assert pgha_service.restart("patroni") == {"service": "patroni", "running": True, "pid": 4242, "manager": "supervisord"}
    assert host.after_reread() == [["reread"], ["update", "patroni"], ["pid", "patroni"]]


def test_restart_without_a_pending_definition(host):
    pgha_service.restart("patroni")
    assert host.after_reread() == [["reread"], ["restart", "patroni"], ["pid", "patroni"]]


def test_start_a_stopped_service_with_its_pending_definition(host):
    host.pids = {}
    host.reread = "patroni: changed\n"
    pgha_service.start("patroni")
    assert host.after_reread() == [["pid", "patroni"], ["reread"], ["update", "patroni"], ["pid", "patroni"]]


def test_start_never_restarts_a_running_service(host):
    host.reread = "patroni: changed\n"
    pgha_service.start("patroni")
    # running: no reread, no update (that would restart it), only start (a no-op: already started)
    assert host.after_reread() == [["pid", "patroni"], ["start", "patroni"], ["pid", "patroni"]]


def test_reload_patroni_is_a_sighup(host):
    pgha_service.reload("patroni")
    assert host.after_reread() == [["signal", "HUP", "patroni"], ["pid", "patroni"]]


def test_reload_etcd_is_a_restart(host):
    pgha_service.reload("etcd")
    assert host.after_reread() == [["reread"], ["restart", "etcd"], ["pid", "etcd"]]


def test_status_of_a_stopped_service(host):
    host.pids = {}
    assert pgha_service.status("patroni") == {"service": "patroni", "running": False, "pid": None, "manager": "supervisord"}


def test_failure_names_the_command(host):
    host.fail = (("restart", "patroni"),)
    with pytest.raises(CommandExecutionError, match=r"supervisorctl -c .*supervisord.conf restart patroni failed \(2\)"):
        pgha_service.restart("patroni")


# ---------------------------------------------------------------------------
# the execution module: systemd
# ---------------------------------------------------------------------------


def test_systemd_never_pending(manager_map, host):
    systemd(manager_map)
    assert pgha_service.pending("patroni") is None
    assert pgha_service.update("patroni") == {"changed": []}
    assert host.commands == []


def test_systemd_restart(manager_map, host):
    systemd(manager_map)
    assert pgha_service.restart("patroni")["pid"] == 4242
    assert host.commands == [
        ["systemctl", "restart", "patroni"],
        ["systemctl", "show", "--property=MainPID", "--value", "patroni"],
    ]


def test_systemd_reload(manager_map, host):
    systemd(manager_map)
    pgha_service.reload("patroni")
    assert host.commands[0] == ["systemctl", "reload", "patroni"]


def test_systemd_start(manager_map, host):
    systemd(manager_map)
    pgha_service.start("patroni")
    assert host.commands[0] == ["systemctl", "start", "patroni"]


# ---------------------------------------------------------------------------
# the state: pgha_service.running and its mod_watch
# ---------------------------------------------------------------------------


def status(pid: int | None, service: str = "patroni") -> dict:
    return {"service": service, "running": pid is not None, "pid": pid, "manager": "supervisord"}


@pytest.fixture
def functions():
    """The execution functions the state calls, as mocks (status: running, pid 10)."""
    mocks = {
        "pgha_service.status": MagicMock(return_value=status(10)),
        "pgha_service.pending": MagicMock(return_value=None),
        "pgha_service.update": MagicMock(return_value={"changed": []}),
        "pgha_service.start": MagicMock(return_value=status(11)),
        "pgha_service.reload": MagicMock(return_value=status(10)),
        "pgha_service.restart": MagicMock(return_value=status(12)),
    }
    pgha_service_state.__salt__.update(mocks)
    return mocks


def test_state_virtual_needs_the_module():
    assert pgha_service_state.__virtual__()[0] is False
    pgha_service_state.__salt__["pgha_service.status"] = MagicMock()
    assert pgha_service_state.__virtual__() == "pgha_service"


def test_running_already(functions):
    ret = pgha_service_state.running("patroni", on_watch="reload")
    assert ret == {"name": "patroni", "changes": {}, "result": True, "comment": "patroni is running (pid 10)"}
    functions["pgha_service.update"].assert_not_called()
    functions["pgha_service.start"].assert_not_called()


def test_running_reload_service_keeps_a_changed_definition_pending(functions):
    functions["pgha_service.pending"].return_value = "changed"
    ret = pgha_service_state.running("patroni", on_watch="reload")
    assert ret["result"] is True
    assert ret["changes"] == {}
    assert ret["comment"] == (
        "patroni is running (pid 10); patroni: definition changed; restart pending: "
        "salt-run pgha.restart what=patroni (replicas first, the leader after a switchover)"
    )
    functions["pgha_service.update"].assert_not_called()
    functions["pgha_service.restart"].assert_not_called()


def test_running_applies_a_changed_definition_when_the_manager_started_in_this_run(functions):
    """supervisord started by this highstate ran its programs from older definitions: they are replaced at once."""
    pgha_service_state.__context__["pgha_service.manager_started"] = 99
    functions["pgha_service.pending"].return_value = "changed"
    functions["pgha_service.status"].side_effect = [status(10), status(16)]
    ret = pgha_service_state.running("patroni", on_watch="reload")
    functions["pgha_service.update"].assert_called_once_with("patroni")
    assert ret["changes"] == {"restarted": {"old": 10, "new": 16}, "definition_applied": True}


def test_manager_running_starts_supervisord_once(functions):
    functions["pgha_service.manager"] = MagicMock(return_value={"manager": "supervisord", "running": False, "pid": None})
    functions["pgha_service.start_manager"] = MagicMock(return_value={"running": True, "pid": 77})
    pgha_service_state.__salt__.update(functions)
    ret = pgha_service_state.manager_running("supervisord.conf")
    assert ret["changes"] == {"running": {"old": False, "new": True}, "pid": 77}
    assert pgha_service_state.__context__["pgha_service.manager_started"] == 77


def test_running_restart_service_applies_a_changed_definition(functions):
    functions["pgha_service.pending"].return_value = "changed"
    functions["pgha_service.status"].side_effect = [status(10, "etcd"), status(13, "etcd")]
    ret = pgha_service_state.running("etcd", on_watch="restart")
    functions["pgha_service.update"].assert_called_once_with("etcd")
    assert ret["changes"] == {"restarted": {"old": 10, "new": 13}, "definition_applied": True}
    assert ret["comment"] == "etcd restarted with its new definition"


def test_running_stopped_reload_service_starts_with_its_new_definition(functions):
    functions["pgha_service.pending"].return_value = "changed"
    functions["pgha_service.status"].side_effect = [status(None), status(14)]
    ret = pgha_service_state.running("patroni", on_watch="reload")
    functions["pgha_service.update"].assert_called_once_with("patroni")
    functions["pgha_service.start"].assert_not_called()
    assert ret["changes"] == {"running": {"old": False, "new": True}, "pid": 14}
    assert pgha_service_state.__context__["pgha_service.started.patroni"] == 14


def test_running_new_program_is_added(functions):
    functions["pgha_service.pending"].return_value = "added"
    functions["pgha_service.status"].side_effect = [status(None), status(15)]
    ret = pgha_service_state.running("patroni", on_watch="reload")
    functions["pgha_service.update"].assert_called_once_with("patroni")
    assert ret["comment"] == "patroni started (pid 15)"


def test_running_starts_a_stopped_service(functions):
    functions["pgha_service.status"].return_value = status(None)
    ret = pgha_service_state.running("patroni", on_watch="reload")
    functions["pgha_service.start"].assert_called_once_with("patroni")
    assert ret["changes"] == {"running": {"old": False, "new": True}, "pid": 11}


def test_running_fails_when_it_does_not_start(functions):
    functions["pgha_service.status"].return_value = status(None)
    functions["pgha_service.start"].return_value = status(None)
    ret = pgha_service_state.running("patroni")
    assert ret["result"] is False
    assert ret["comment"] == "patroni did not start; see its log"


def test_running_test_mode_reports_and_touches_nothing(functions):
    pgha_service_state.__opts__["test"] = True
    functions["pgha_service.status"].return_value = status(None)
    ret = pgha_service_state.running("patroni", on_watch="reload")
    assert ret == {"name": "patroni", "changes": {"running": {"old": False, "new": True}}, "result": None,
                   "comment": "patroni would be started"}
    for name in ("pgha_service.pending", "pgha_service.update", "pgha_service.start"):
        functions[name].assert_not_called()


def test_running_test_mode_no_change(functions):
    pgha_service_state.__opts__["test"] = True
    ret = pgha_service_state.running("patroni", on_watch="reload")
    assert ret["result"] is True
    assert ret["changes"] == {}


def test_running_refuses_an_unknown_on_watch(functions):
    ret = pgha_service_state.running("patroni", on_watch="kill")
    assert ret["result"] is False
    assert "on_watch must be restart or reload" in ret["comment"]
    functions["pgha_service.status"].assert_not_called()


def test_mod_watch_reload_reports_a_pending_definition(functions):
    functions["pgha_service.pending"].return_value = "changed"
    ret = pgha_service_state.mod_watch("patroni", on_watch="reload")
    functions["pgha_service.reload"].assert_called_once_with("patroni")
    functions["pgha_service.restart"].assert_not_called()
    note = ("patroni: definition changed; restart pending: salt-run pgha.restart what=patroni "
            "(replicas first, the leader after a switchover)")
    assert ret["changes"] == {"reloaded": True, "restart_pending": note}
    assert ret["comment"] == "patroni reloaded its configuration; " + note


def test_mod_watch_reload(functions):
    ret = pgha_service_state.mod_watch("haproxy", on_watch="reload")
    assert ret["changes"] == {"reloaded": True}
    assert ret["result"] is True


def test_mod_watch_restart(functions):
    ret = pgha_service_state.mod_watch("etcd", on_watch="restart")
    functions["pgha_service.restart"].assert_called_once_with("etcd")
    assert ret["changes"] == {"restarted": {"old": 10, "new": 12}}


def test_mod_watch_after_a_start_in_the_same_run(functions):
    pgha_service_state.__context__["pgha_service.started.patroni"] = 10
    ret = pgha_service_state.mod_watch("patroni", on_watch="reload")
    assert ret["changes"] == {}
    assert ret["comment"] == "patroni was just started with this configuration"
    functions["pgha_service.reload"].assert_not_called()


def test_mod_watch_stopped_service_is_started(functions):
    functions["pgha_service.status"].return_value = status(None)
    ret = pgha_service_state.mod_watch("patroni", on_watch="reload")
    functions["pgha_service.start"].assert_called_once_with("patroni")
    functions["pgha_service.reload"].assert_not_called()
    assert ret["changes"]["running"] == {"old": False, "new": True}


def test_mod_watch_test_mode(functions):
    pgha_service_state.__opts__["test"] = True
    ret = pgha_service_state.mod_watch("patroni", on_watch="reload")
    assert ret == {"name": "patroni", "changes": {}, "result": None, "comment": "patroni would be reloaded"}
    functions["pgha_service.status"].assert_not_called()


# ---------------------------------------------------------------------------
# the host's own supervisord: manager, start_manager, state manager_running
# ---------------------------------------------------------------------------


@pytest.fixture
def pidfile(tmp_path, manager_map):
    path = tmp_path / "supervisord.pid"
    manager_map["lookup"]["supervisor"].update(pidfile=str(path), supervisord="/usr/bin/supervisord",
                                               log_dir=str(tmp_path))
    return path


def test_manager_reads_the_pid_file(pidfile):
    assert pgha_service.manager() == {"manager": "supervisord", "running": False, "pid": None}
    pidfile.write_text(f"{os.getpid()}\n")  # a live process
    assert pgha_service.manager() == {"manager": "supervisord", "running": True, "pid": os.getpid()}


def test_manager_with_a_stale_pid_file(pidfile):
    with subprocess.Popen(["true"]) as gone:
        gone.wait()
    pidfile.write_text(f"{gone.pid}\n")
    assert pgha_service.manager()["running"] is False


def test_manager_under_systemd_is_init(manager_map, host):
    systemd(manager_map)
    assert pgha_service.manager() == {"manager": "systemd", "running": True, "pid": 1}
    assert host.commands == []


def test_start_manager_starts_supervisord_with_its_configuration(pidfile, host, monkeypatch):
    def supervisord(cmd, python_shell=True, ignore_retcode=False, **kwargs):
        host.commands.append(list(cmd))
        pidfile.write_text(f"{os.getpid()}\n")
        return {"retcode": 0, "stdout": "", "stderr": ""}

    monkeypatch.setitem(pgha_service.__salt__, "cmd.run_all", supervisord)
    monkeypatch.setattr(pgha_service.time, "sleep", MagicMock())
    assert pgha_service.start_manager() == {"manager": "supervisord", "running": True, "pid": os.getpid(),
                                            "started": True}
    assert host.commands == [["/usr/bin/supervisord", "-c", CONF]]
    assert pgha_service.start_manager()["started"] is False
    assert len(host.commands) == 1


def test_start_manager_that_does_not_come_up(pidfile, host, monkeypatch):
    monkeypatch.setattr(pgha_service.time, "sleep", MagicMock())
    with pytest.raises(CommandExecutionError, match="supervisord did not start within 0 s"):
        pgha_service.start_manager(wait=0)
    assert host.commands == [["/usr/bin/supervisord", "-c", CONF]]


@pytest.mark.parametrize("test", [False, True])
def test_manager_running_state(test):
    functions = {"pgha_service.manager": MagicMock(return_value={"manager": "supervisord", "running": False,
                                                                 "pid": None}),
                 "pgha_service.start_manager": MagicMock(return_value={"pid": 77, "running": True, "started": True})}
    pgha_service_state.__salt__.update(functions)
    pgha_service_state.__opts__["test"] = test
    ret = pgha_service_state.manager_running("/etc/pgha/supervisord.conf")
    assert ret["changes"]["running"] == {"old": False, "new": True}
    if test:
        assert ret["result"] is None and "would be started" in ret["comment"]
        functions["pgha_service.start_manager"].assert_not_called()
    else:
        assert ret["result"] is True and ret["comment"] == "supervisord started (pid 77)"
    functions["pgha_service.manager"].return_value = {"manager": "supervisord", "running": True, "pid": 77}
    ret = pgha_service_state.manager_running("/etc/pgha/supervisord.conf")
    assert (ret["result"], ret["changes"], ret["comment"]) == (True, {}, "supervisord is running (pid 77)")


# ---------------------------------------------------------------------------
# disable: a node retired from the cluster
# ---------------------------------------------------------------------------


def test_disable_under_supervisord_stops_and_takes_the_program_out(pidfile, manager_map, host, tmp_path):
    include = tmp_path / "supervisord.d"
    include.mkdir()
    (include / "patroni.conf").write_text("[program:patroni]\n")
    manager_map["lookup"]["supervisor"]["include_dir"] = str(include)
    pidfile.write_text(f"{os.getpid()}\n")  # supervisord runs
    host.pids["patroni"] = 0  # and Patroni is stopped after
    result = pgha_service.disable("patroni")
    assert host.after_reread() == [["stop", "patroni"], ["update", "patroni"], ["pid", "patroni"]]
    assert not (include / "patroni.conf").exists()
    assert (include / "patroni.conf.disabled").read_text() == "[program:patroni]\n"
    assert result["disabled"] is True and result["running"] is False


def test_disable_under_systemd(manager_map, host):
    systemd(manager_map)
    host.pids["patroni"] = 0
    assert pgha_service.disable("patroni")["disabled"] is True
    assert host.commands[0] == ["systemctl", "disable", "--now", "patroni"]


def test_disable_that_fails_says_so(manager_map, host):
    systemd(manager_map)
    host.fail = (("systemctl", "disable"),)
    with pytest.raises(CommandExecutionError, match="systemctl disable --now patroni failed"):
        pgha_service.disable("patroni")
