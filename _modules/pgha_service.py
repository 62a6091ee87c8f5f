"""
Start, stop, inspect and crash the pgha services of a node (etcd, patroni,
haproxy) through the node's service manager: systemd on real hosts, the
node's own supervisord in containers and the lab (pillar
``pgha:lookup:service_manager``). The failover drill uses it to take a leader
away the way an operator or a crash would.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_service"

SERVICES = ("etcd", "patroni", "haproxy", "pgbouncer", "pgbackrest", "backup_schedule", "prometheus", "alertmanager",
            "node_exporter", "postgres_exporter", "pgbouncer_exporter")
# A runtime drop-in that keeps systemd from restarting a crashed service.
NO_RESTART_DROPIN = "/run/systemd/system/{unit}.service.d/pgha-no-restart.conf"


def __virtual__():
    return __virtualname__


def _map() -> dict:
    if "pgha_service.map" not in __context__:
        __context__["pgha_service.map"] = __salt__["pgha_config.mapdata"]()
    return __context__["pgha_service.map"]


def _unit(service: str) -> str:
    if service not in SERVICES:
        raise CommandExecutionError(f"pgha_service: unknown service {service!r}; one of {', '.join(SERVICES)}")
    return _map()["lookup"][service]["service"]


def _manager() -> str:
    return _map()["lookup"]["service_manager"]


def _run(cmd: list[str], ok_codes: tuple = (0,)) -> str:
    ret = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True)
    if ret["retcode"] not in ok_codes:
        raise CommandExecutionError(
            f"pgha_service: {' '.join(cmd)} failed ({ret['retcode']}): {(ret['stderr'] or ret['stdout']).strip()}"
        )
    return ret["stdout"]


def _supervisorctl(*args: str, ok_codes: tuple = (0,)) -> str:
    sup = _map()["lookup"]["supervisor"]
    return _run([sup["supervisorctl"], "-c", sup["conf_file"], *args], ok_codes=ok_codes)


def manager() -> dict:
    """
    This host's own supervisord (the lab, containers): whether it runs, by
    its pid file (pgha:lookup:supervisor:pidfile), and its pid. Under
    systemd, the service manager is the host's init and always runs.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.manager
    """
    if _manager() != "supervisord":
        return {"manager": "systemd", "running": True, "pid": 1}
    try:
        with open(_map()["lookup"]["supervisor"]["pidfile"], encoding="utf-8") as handle:
            text = handle.read().split()
        pid = int(text[0]) if text and text[0].isdigit() else None
        if pid:
            os.kill(pid, 0)
    except (OSError, ProcessLookupError):
        pid = None
    return {"manager": "supervisord", "running": pid is not None, "pid": pid}


def start_manager(wait: float = 30.0) -> dict:
    """
    Start this host's supervisord (``supervisord -c <conf_file>``) unless it
    runs, and wait, at most ``wait`` seconds, for its pid file.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.start_manager
    """
    found = manager()
    if found["running"]:
        return dict(found, started=False)
    sup = _map()["lookup"]["supervisor"]
    _run([sup["supervisord"], "-c", sup["conf_file"]])
    deadline = time.monotonic() + float(wait)
    while not found["running"] and time.monotonic() < deadline:
        time.sleep(0.2)
        found = manager()
    if not found["running"]:
        raise CommandExecutionError(f"pgha_service: supervisord did not start within {wait:g} s; see {sup['log_dir']}")
    return dict(found, started=True)


def main_pid(service: str) -> int | None:
    """
    The main process id of a service, or None when it is not running.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.main_pid patroni
    """
    unit = _unit(service)
    if _manager() == "supervisord":
        out = _supervisorctl("pid", unit, ok_codes=(0, 1, 7)).strip()
    else:
        out = _run(["systemctl", "show", "--property=MainPID", "--value", unit]).strip()
    return int(out) if out.isdigit() and int(out) > 0 else None


def status(service: str) -> dict:
    """
    Whether a service runs, and its main process id.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.status patroni
    """
    pid = main_pid(service)
    return {"service": _unit(service), "running": pid is not None, "pid": pid, "manager": _manager()}


def stop(service: str) -> dict:
    """
    Stop a service the way an operator does (``systemctl stop``,
    ``supervisorctl stop``): Patroni shuts PostgreSQL down and hands the
    leader key over.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.stop patroni
    """
    unit = _unit(service)
    stopping_at = time.time()
    if _manager() == "supervisord":
        _supervisorctl("stop", unit)
    else:
        _run(["systemctl", "stop", unit])
    return dict(status(service), stopping_at=stopping_at)


def start(service: str) -> dict:
    """
    Start a service (after ``stop`` or ``crash``), under supervisord with
    its pending definition if there is one.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.start patroni
    """
    unit = _unit(service)
    if _manager() == "supervisord":
        if main_pid(service) is None and pending(service):
            # stopped: its new definition starts (autostart); a running one is never touched here
            _supervisorctl("update", unit)
        else:
            _supervisorctl("start", unit, ok_codes=(0, 7))
    else:
        dropin = NO_RESTART_DROPIN.format(unit=unit)
        if os.path.exists(dropin):
            os.remove(dropin)
            _run(["systemctl", "daemon-reload"])
        _run(["systemctl", "start", unit])
    return status(service)


def disable(service: str) -> dict:
    """
    Stop a service and keep it from starting again (a node retired from
    the cluster): ``systemctl disable --now`` under systemd; under
    supervisord its program file is renamed ``<name>.conf.disabled`` (out
    of the include pattern) and ``supervisorctl update`` removes it.
    ``start`` does not undo this; the formula's states do, when the host is
    given the role again.

    CLI Example:

    .. code-block:: bash

        salt postgres04 pgha_service.disable patroni
    """
    unit = _unit(service)
    stopping_at = time.time()
    if _manager() == "supervisord":
        program = os.path.join(_map()["lookup"]["supervisor"]["include_dir"], f"{unit}.conf")
        running = manager()["running"]
        if running:
            _supervisorctl("stop", unit, ok_codes=(0, 7))  # waits for the graceful stop
        if os.path.exists(program):
            os.replace(program, program + ".disabled")
        if running:
            _supervisorctl("update", unit)
    else:
        _run(["systemctl", "disable", "--now", unit])
    return dict(status(service), stopping_at=stopping_at, disabled=True)


RELOAD_SIGNALS = {"patroni": "HUP", "haproxy": "USR2", "pgbouncer": "HUP", "prometheus": "HUP", "alertmanager": "HUP"}


# `supervisorctl reread` words for a program whose definition is new or changed.
PENDING_WORDS = {"available": "added", "changed": "changed"}


def pending(service: str) -> str | None:
    """
    Whether the service manager holds a definition of the service that the
    running service does not use yet: ``added`` (a new supervisord program),
    ``changed`` (a changed one: applying it restarts the service) or None.
    Always None under systemd, where the unit is in force once systemd is
    reloaded and a running service keeps its process until restarted.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.pending patroni
    """
    unit = _unit(service)
    if _manager() != "supervisord":
        return None
    for line in _supervisorctl("reread").splitlines():
        name, _, word = line.partition(":")
        if name.strip() == unit and word.strip() in PENDING_WORDS:
            return PENDING_WORDS[word.strip()]
    return None


def update(service: str | None = None) -> dict:
    """
    Make supervisord take program definitions in (``reread``, then
    ``update``): a new program is added and started, a changed one is
    restarted with its new definition. With ``service``, that program only;
    without, every program. Nothing to do under systemd.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.update etcd
    """
    if _manager() != "supervisord":
        return {"changed": []}
    names = [_unit(service)] if service else []
    _supervisorctl("reread")
    out = _supervisorctl("update", *names)
    changed = sorted({line.split(":")[0] for line in out.splitlines() if ":" in line})
    return {"changed": changed}


def restart(service: str) -> dict:
    """
    Restart a service. Under supervisord a pending definition (see
    ``pending``) is applied by the restart (``supervisorctl update <name>``);
    under systemd the unit in force since the last ``daemon-reload`` starts.

    CLI Example:

    .. code-block:: bash

        salt etcd pgha_service.restart etcd
    """
    unit = _unit(service)
    if _manager() == "supervisord":
        if pending(service):
            _supervisorctl("update", unit)
        else:
            _supervisorctl("restart", unit)
    else:
        _run(["systemctl", "restart", unit])
    return status(service)


def reload(service: str) -> dict:
    """
    Make a running service read its configuration again without a restart:
    SIGHUP to Patroni, SIGUSR2 to HAProxy's master process; other services
    are restarted.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.reload patroni
    """
    unit = _unit(service)
    if service not in RELOAD_SIGNALS:
        return restart(service)
    if _manager() == "supervisord":
        _supervisorctl("signal", RELOAD_SIGNALS[service], unit)
    else:
        _run(["systemctl", "reload", unit])
    return status(service)


def _postmaster_pid() -> int | None:
    path = os.path.join(_map()["lookup"]["patroni"]["data_dir"], "postmaster.pid")
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline().strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _program_state(unit: str) -> str:
    out = _supervisorctl("status", unit, ok_codes=(0, 1, 2, 3, 4, 7))
    parts = out.split()
    return parts[1] if len(parts) > 1 else "UNKNOWN"


def crash(service: str = "patroni") -> dict:
    """
    Crash a service as a dead host would: SIGKILL to its main process (and,
    for Patroni, to the PostgreSQL postmaster), and no automatic restart until
    ``start``. Returns the pids killed.

    Under supervisord the main process is frozen first (SIGSTOP), the
    postmaster killed, the program put into stopping and only then the main
    process killed: supervisord takes that exit as the stop it asked for and
    does not restart it, and nothing of the service runs after the fault.
    Under systemd a runtime drop-in (``Restart=no``) keeps the unit down.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.crash patroni
    """
    unit = _unit(service)
    main = main_pid(service)
    if not main:
        raise CommandExecutionError(f"pgha_service: {unit} is not running; nothing to crash")
    postmaster = _postmaster_pid() if service == "patroni" else None
    if _manager() == "systemd":
        dropin = NO_RESTART_DROPIN.format(unit=unit)
        os.makedirs(os.path.dirname(dropin), exist_ok=True)
        with open(dropin, "w", encoding="utf-8") as handle:
            handle.write("[Service]\nRestart=no\n")
        _run(["systemctl", "daemon-reload"])
        killed_at = time.time()
        for pid in (main, postmaster):
            _kill(pid, signal.SIGKILL)
        return {"service": unit, "killed": [p for p in (main, postmaster) if p], "killed_at": killed_at}
    _kill(main, signal.SIGSTOP)
    killed_at = time.time()
    _kill(postmaster, signal.SIGKILL)
    sup = _map()["lookup"]["supervisor"]
    stopper = subprocess.Popen(
        [sup["supervisorctl"], "-c", sup["conf_file"], "stop", unit],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while _program_state(unit) != "STOPPING" and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill(main, signal.SIGKILL)
    stopper.wait(timeout=30)
    return {"service": unit, "killed": [p for p in (main, postmaster) if p], "killed_at": killed_at,
            "state": _program_state(unit)}


def _kill(pid: int | None, sig: int) -> None:
    if not pid:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def freeze(service: str = "patroni") -> dict:
    """
    Freeze a service's main process (SIGSTOP), as a stalled host, a paused
    VM or a storage hang would: it neither runs nor dies, and its children
    (PostgreSQL under Patroni) go on. ``thaw`` resumes it. Returns the pid
    and the moment it was frozen.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.freeze patroni
    """
    unit = _unit(service)
    pid = main_pid(service)
    if not pid:
        raise CommandExecutionError(f"pgha_service: {unit} is not running; nothing to freeze")
    frozen_at = time.time()
    _kill(pid, signal.SIGSTOP)
    return {"service": unit, "pid": pid, "frozen_at": frozen_at}


def thaw(service: str = "patroni") -> dict:
    """
    Resume a frozen service's main process (SIGCONT). Harmless on a
    process that is not frozen.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.thaw patroni
    """
    unit = _unit(service)
    pid = main_pid(service)
    if not pid:
        raise CommandExecutionError(f"pgha_service: {unit} is not running; nothing to thaw")
    _kill(pid, signal.SIGCONT)
    return {"service": unit, "pid": pid, "thawed_at": time.time()}


LOG_TAIL_BYTES = 4 * 1024 * 1024


def log_lines(service: str, contains: list | str, since: float | None = None) -> list[str]:
    """
    The lines of a service's own log (its journal under systemd, its
    supervisord log file otherwise; the last 4 MB) holding any of the
    strings ``contains``, from ``since`` (epoch seconds; the journal's own
    filter, the file's lines all) on. PostgreSQL's lines under Patroni carry
    its log_line_prefix (``%m [%p]``: the time to the millisecond): the
    failover drill reads a shutdown's and a promotion's moments from them.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_service.log_lines patroni '["checkpoint complete"]'
    """
    wanted = [contains] if isinstance(contains, str) else [str(text) for text in contains or []]
    if not wanted:
        raise CommandExecutionError("pgha_service: log_lines needs at least one string to look for (contains)")
    unit = _unit(service)
    if _manager() == "supervisord":
        path = os.path.join(_map()["lookup"]["supervisor"]["log_dir"], f"{unit}.log")
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, os.path.getsize(path) - LOG_TAIL_BYTES))
                text = handle.read().decode(errors="replace")
        except OSError as exc:
            raise CommandExecutionError(f"pgha_service: cannot read {path}: {exc.strerror}") from None
    else:
        text = _run(["journalctl", "--unit", unit, "--output", "cat", "--no-pager",
                     *(["--since", f"@{float(since):.3f}"] if since else [])])
    return [line for line in text.splitlines() if any(word in line for word in wanted)]
