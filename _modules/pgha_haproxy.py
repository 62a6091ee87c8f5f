"""
HAProxy in front of the pgha cluster, as an operator sees it: the state of
each PostgreSQL server in each of pgha's listeners (``postgres``, the
leader's port, and the read paths ``postgres_replicas``, ``postgres_sync``,
``postgres_async`` when enabled), which one takes the writes, and draining a
server before maintenance (and making it ready again).

Run on the HAProxy node. It reads the runtime API on the admin socket
(``pgha:lookup:haproxy:admin_socket``, ``show stat``) and falls back to the
stats page (``http://<stats address>:<stats_port>/;csv`` with the pillar's
``users:haproxy_stats`` and ``secrets:haproxy_stats_password``) when the
socket cannot be read; drain and ready need the admin socket (root). Named
``pgha_haproxy`` because Salt ships a ``haproxy`` module (haproxyconn). Needs
the haproxy binary on the minion.
"""

from __future__ import annotations

import logging
import re
import socket

import salt.utils.path
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_haproxy"

PROXY = "postgres"
SOCKET_TIMEOUT = 3.0
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def __virtual__():
    if not salt.utils.path.which("haproxy"):
        return (False, "pgha_haproxy: the haproxy binary is not installed on this minion (package haproxy)")
    return __virtualname__


# ---------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------


def _map() -> dict:
    if "pgha_haproxy.map" not in __context__:
        __context__["pgha_haproxy.map"] = __salt__["pgha_config.mapdata"](show_secrets=True)
    return __context__["pgha_haproxy.map"]


def _socket_command(command: str) -> str:
    """One command on HAProxy's runtime API (the admin socket); its whole answer."""
    path = _map()["lookup"]["haproxy"]["admin_socket"]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(SOCKET_TIMEOUT)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except FileNotFoundError as exc:
        raise CommandExecutionError(
            f"pgha_haproxy: no admin socket at {path}: is HAProxy running on this minion with "
            "'stats socket' (pgha:lookup:haproxy:admin_socket)?"
        ) from exc
    except PermissionError as exc:
        raise CommandExecutionError(f"pgha_haproxy: no permission on the admin socket {path}: run as root") from exc
    except TimeoutError as exc:
        raise CommandExecutionError(f"pgha_haproxy: the admin socket {path} gave no answer within {SOCKET_TIMEOUT:g} s") from exc
    except OSError as exc:
        raise CommandExecutionError(f"pgha_haproxy: cannot use the admin socket {path}: {exc} (is HAProxy running?)") from exc
    return b"".join(chunks).decode(errors="replace")


def _listeners() -> list[str]:
    return [listener["name"] for listener in _map()["haproxy"]["listeners"]]


def _ours(found: dict) -> dict:
    """pgha's listeners (the leader's first) and their servers, of every proxy's."""
    return {name: found[name] for name in _listeners() if name in found}


def _server_name(server: str) -> str:
    # The runtime API splits commands on ';' and lines: only plain names pass.
    if not isinstance(server, str) or not _SERVER_NAME.match(server):
        raise CommandExecutionError(f"pgha_haproxy: {server!r} is not a server name (letters, digits, . _ -)")
    return server


def _set_state(server: str, state: str) -> dict:
    """A server's state in every listener it is in: {server, listeners: {listener: {old, new}}}."""
    name = _server_name(server)
    before = servers()
    where = [listener for listener, found in before.items() if name in found]
    if not where:
        known = sorted(set().union(*before.values())) if before else []
        raise CommandExecutionError(f"pgha_haproxy: no server {name} in pgha's listeners (servers: {', '.join(known) or 'none'})")
    for listener in where:
        command = f"set server {listener}/{name} state {state}"
        answer = _socket_command(command).strip()
        if answer:
            raise CommandExecutionError(f"pgha_haproxy: HAProxy refused '{command}': {answer}")
    after = servers()
    return {"server": name, "listeners": {listener: {"old": before[listener][name]["status"],
                                                     "new": after.get(listener, {}).get(name, {}).get("status")}
                                          for listener in where}}


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------


def servers() -> dict:
    """
    Each of pgha's listeners (``postgres``, the leader's port, then the read
    paths) and each of its servers: status (UP, DOWN, DRAIN, MAINT, or a
    transition such as ``UP 1/2``), address, weight, last health check
    (status, HTTP code of Patroni's answer, description), current sessions
    and seconds since the last change. Read from the admin socket, or from
    the stats page when the socket cannot be read.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_haproxy.servers
    """
    try:
        text = _socket_command("show stat")
    except CommandExecutionError as socket_problem:
        log.info("pgha_haproxy: %s; reading the stats page instead", socket_problem)
        try:
            found = _ours(__utils__["pgha_cluster.haproxy_stats_page"](__utils__["pgha_model.cluster_of"](_map())))
        except CommandExecutionError as page_problem:
            raise CommandExecutionError(f"{socket_problem}; and {page_problem}") from page_problem
    else:
        found = _ours(__utils__["pgha_cluster.parse_haproxy_stats"](text))
    if PROXY not in found:
        raise CommandExecutionError(
            f"pgha_haproxy: HAProxy has no proxy {PROXY!r} with servers; is this the pgha HAProxy node?"
        )
    return found


def writer() -> str | None:
    """
    The server HAProxy sends writes to: the one whose status is UP (its
    Patroni answers 200 on ``/primary``). None when no server is UP; an
    error when more than one is.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_haproxy.writer
    """
    found = servers()[PROXY]
    up = sorted(name for name, state in found.items() if state["status"].startswith("UP"))
    if len(up) > 1:
        raise CommandExecutionError(
            f"pgha_haproxy: {len(up)} servers are UP ({', '.join(up)}): writes could reach more than one "
            "PostgreSQL; check patroni.members for more than one leader"
        )
    return up[0] if up else None


def drain(server: str) -> dict:
    """
    Stop sending new connections to a server, in every listener it is in
    (``set server <listener>/<name> state drain``); sessions in progress go
    on. Lasts until ``ready`` or HAProxy's next restart or reload. Returns
    the status before and after, by listener.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_haproxy.drain postgres02
    """
    return _set_state(server, "drain")


def ready(server: str) -> dict:
    """
    Let a drained (or maintenance) server take connections again, in every
    listener it is in (``set server <listener>/<name> state ready``).
    Returns the status before and after, by listener.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_haproxy.ready postgres02
    """
    return _set_state(server, "ready")
