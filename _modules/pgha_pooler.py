"""
PgBouncer on the pgha HAProxy node, as an operator drives it: pause it (its
clients wait while the leader moves), resume it, and see its databases and
pools. Run on the HAProxy node, where PgBouncer is (pillar
``pgha:pgbouncer:enabled``). It speaks to PgBouncer's admin console through
its Unix socket as PgBouncer's own Unix user (``pgha:lookup:pgbouncer:user``),
the one way in: the console takes no password and no remote login. Needs
psql (Debian's postgresql-client) on the minion.
"""

from __future__ import annotations

import logging
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_pooler"

# PgBouncer's answer to RESUME when nothing is paused.
_NOT_PAUSED = "not paused"
# How often resume_when_routed looks at HAProxy's servers.
ROUTE_POLL_S = 0.05


def __virtual__():
    if not salt.utils.path.which("psql"):
        return (False, "pgha_pooler: psql is not installed on this minion (package postgresql-client)")
    return __virtualname__


def _map() -> dict:
    if "pgha_pooler.map" not in __context__:
        __context__["pgha_pooler.map"] = __salt__["pgha_config.mapdata"]()
    return __context__["pgha_pooler.map"]


def _console(command: str, timeout: float, header: bool = False) -> str:
    """One command of PgBouncer's admin console; its output (unaligned, '|' between fields)."""
    cfg = _map()
    if not cfg["pgbouncer"]["enabled"]:
        raise CommandExecutionError("pgha_pooler: PgBouncer is not enabled (pgha:pgbouncer:enabled)")
    paths = cfg["lookup"]["pgbouncer"]
    cmd = ["psql", "-X", "-A", *([] if header else ["-t"]), "-F", "|", "-h", paths["socket_dir"],
           "-p", str(cfg["pgbouncer"]["port"]), "-U", "pgbouncer", "-d", "pgbouncer", "-c", command]
    ret = __salt__["cmd.run_all"](cmd, python_shell=False, runas=paths["user"], timeout=timeout, ignore_retcode=True)
    if ret["retcode"] != 0:
        detail = (ret.get("stderr") or ret.get("stdout") or "").strip().splitlines()
        raise CommandExecutionError(f"pgha_pooler: {command} failed: {detail[-1] if detail else 'no answer'}")
    return ret["stdout"]


def pause(timeout: float = 30) -> dict:
    """
    Pause PgBouncer (``PAUSE``): it waits for the transactions in flight
    (in transaction pooling) to end, closes its server connections and holds
    every new query until ``resume``. At most ``timeout`` seconds: past it,
    PgBouncer is resumed and the pause fails.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_pooler.pause timeout=30
    """
    asked = time.time()
    try:
        _console("PAUSE", timeout=float(timeout))
    except CommandExecutionError as exc:
        resume()
        raise CommandExecutionError(f"{exc}; PgBouncer was resumed") from exc
    return {"paused": True, "paused_at": asked, "took_s": round(time.time() - asked, 3)}


def resume() -> dict:
    """
    Resume a paused PgBouncer (``RESUME``): the queries it held go to the
    servers HAProxy's leader port now leads to. Resuming a PgBouncer that is
    not paused changes nothing.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_pooler.resume
    """
    try:
        _console("RESUME", timeout=30)
    except CommandExecutionError as exc:
        if _NOT_PAUSED in str(exc).lower():
            return {"paused": False, "changed": False}
        raise
    return {"paused": False, "changed": True, "resumed_at": time.time()}


def resume_when_routed(away_from: str, timeout: float = 60) -> dict:
    """
    Resume PgBouncer the moment HAProxy's leader port (``postgres``) routes
    to one server and it is not ``away_from`` (the leader being moved),
    looking at HAProxy's servers every 50 ms on this host; resumed anyway
    after ``timeout`` seconds, then an error. Asked before a switchover, it
    ends a pause without a round trip through the master.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_pooler.resume_when_routed away_from=postgres01 timeout=60
    """
    started, deadline = time.time(), time.monotonic() + float(timeout)
    routed, seen = None, "nothing read yet"
    while routed is None and time.monotonic() < deadline:
        try:
            servers = __salt__["pgha_haproxy.servers"]().get("postgres") or {}
            up = sorted(name for name, entry in servers.items() if str(entry.get("status")).startswith("UP"))
            seen = f"UP: {', '.join(up) or 'none'}"
            routed = up[0] if len(up) == 1 and up[0] != away_from else None
        except CommandExecutionError as exc:
            seen = str(exc)
        if routed is None:
            time.sleep(ROUTE_POLL_S)
    answer = resume()
    if routed is None:
        raise CommandExecutionError(f"pgha_pooler: HAProxy's leader port did not route away from {away_from} "
                                    f"within {float(timeout):g} s ({seen}); PgBouncer resumed")
    return dict(answer, routed_to=routed, waited_s=round(time.time() - started, 3))


def databases() -> list[dict]:
    """
    PgBouncer's databases as its console lists them (``SHOW DATABASES``):
    name, host, port, pool mode, whether paused or disabled.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_pooler.databases
    """
    lines = [line for line in _console("SHOW DATABASES", timeout=30, header=True).splitlines() if "|" in line]
    if not lines:
        return []
    columns = lines[0].split("|")
    rows = [dict(zip(columns, line.split("|"))) for line in lines[1:]]
    return [{"name": row.get("name"), "host": row.get("host") or None, "port": row.get("port"),
             "pool_mode": row.get("pool_mode") or None, "paused": row.get("paused") == "1",
             "disabled": row.get("disabled") == "1"} for row in rows]
