"""
HAProxy in front of the pgha cluster, as an operator sees it: the state of
each PostgreSQL server of the ``postgres`` proxy, which one takes the writes,
and draining a server before maintenance (and making it ready again).

Run on the HAProxy node. It reads the runtime API on the admin socket
(``pgha:lookup:haproxy:admin_socket``, ``show stat``) and falls back to the
stats page (``http://<stats address>:<stats_port>/;csv`` with the pillar's
``users:haproxy_stats`` and ``secrets:haproxy_stats_password``) when the
socket cannot be read; drain and ready need the admin socket (root). Named
``pgha_haproxy`` because Salt ships a ``haproxy`` module (haproxyconn). Needs
the haproxy binary on the minion.
"""

from __future__ import annotations

import base64
import csv
import io
import logging
import re
import socket
import urllib.error
import urllib.request

import salt.utils.path
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_haproxy"

PROXY = "postgres"
SOCKET_TIMEOUT = 3.0
HTTP_TIMEOUT = 3.0
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ANY_ADDRESS = ("*", "0.0.0.0", "::", "", None)


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


def _request(url: str, auth: tuple[str, str] | None = None, timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
    """One GET of the stats page. Returns (status, text)."""
    headers = {}
    if auth:
        token = f"{auth[0]}:{auth[1]}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise CommandExecutionError(f"pgha_haproxy: stats page {url} unreachable: {getattr(exc, 'reason', exc)}") from exc


def _stats_url() -> str:
    cfg = _map()
    haproxy = cfg["haproxy"]
    host = haproxy.get("stats_bind_address")
    if host in _ANY_ADDRESS:
        # Bound on every address: ask this node's own (the HAProxy node).
        host = (cfg.get("node") or {}).get("address") or haproxy.get("write_address") or "127.0.0.1"
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{haproxy['stats_port']}/;csv"


def _stats_page() -> str:
    cfg = _map()
    url = _stats_url()
    status, text = _request(url, auth=(cfg["users"]["haproxy_stats"], cfg["secrets"]["haproxy_stats_password"]))
    if status == 401:
        raise CommandExecutionError(
            f"pgha_haproxy: stats page {url} refused the credentials: compare pgha:users:haproxy_stats and "
            "pgha:secrets:haproxy_stats_password with 'stats auth' in haproxy.cfg"
        )
    if status != 200:
        raise CommandExecutionError(f"pgha_haproxy: stats page {url} answered {status}: {text.strip()[:200]}")
    return text


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") and str(value).lstrip("-").isdigit() else None


def _parse_stats(text: str, proxy: str = PROXY) -> dict:
    """Server name -> its state, from HAProxy's CSV statistics, for one proxy."""
    reader = csv.DictReader(io.StringIO(text.lstrip("# ")))
    found = {}
    for row in reader:
        if row.get("pxname") != proxy or row.get("svname") in ("FRONTEND", "BACKEND", None):
            continue
        found[row["svname"]] = {
            "status": row.get("status") or "",
            "address": row.get("addr") or None,
            "weight": _int(row.get("weight")),
            "check_status": row.get("check_status") or None,
            "check_code": _int(row.get("check_code")),
            "check_desc": row.get("check_desc") or None,
            "sessions": _int(row.get("scur")),
            "last_change_s": _int(row.get("lastchg")),
        }
    return found


def _server_name(server: str) -> str:
    # The runtime API splits commands on ';' and lines: only plain names pass.
    if not isinstance(server, str) or not _SERVER_NAME.match(server):
        raise CommandExecutionError(f"pgha_haproxy: {server!r} is not a server name (letters, digits, . _ -)")
    return server


def _set_state(server: str, state: str) -> dict:
    name = _server_name(server)
    before = servers()
    if name not in before:
        raise CommandExecutionError(
            f"pgha_haproxy: no server {name} in the {PROXY} proxy (servers: {', '.join(sorted(before)) or 'none'})"
        )
    command = f"set server {PROXY}/{name} state {state}"
    answer = _socket_command(command).strip()
    if answer:
        raise CommandExecutionError(f"pgha_haproxy: HAProxy refused '{command}': {answer}")
    after = servers().get(name, {})
    return {"server": name, "old": before[name]["status"], "new": after.get("status")}


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------


def servers() -> dict:
    """
    Each server of the ``postgres`` proxy: status (UP, DOWN, DRAIN, MAINT,
    or a transition such as ``UP 1/2``), address, weight, last health check
    (status, HTTP code of Patroni's ``/primary``, description), current
    sessions and seconds since the last change. Read from the admin socket,
    or from the stats page when the socket cannot be read.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_haproxy.servers
    """
    try:
        text = _socket_command("show stat")
    except CommandExecutionError as socket_problem:
        log.info("pgha_haproxy: %s; reading the stats page instead", socket_problem)
        try:
            text = _stats_page()
        except CommandExecutionError as page_problem:
            raise CommandExecutionError(f"{socket_problem}; and {page_problem}") from page_problem
    found = _parse_stats(text)
    if not found:
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
    found = servers()
    up = sorted(name for name, state in found.items() if state["status"].startswith("UP"))
    if len(up) > 1:
        raise CommandExecutionError(
            f"pgha_haproxy: {len(up)} servers are UP ({', '.join(up)}): writes could reach more than one "
            "PostgreSQL; check patroni.members for more than one leader"
        )
    return up[0] if up else None


def drain(server: str) -> dict:
    """
    Stop sending new connections to a server (``set server postgres/<name>
    state drain``); sessions in progress go on. Lasts until ``ready`` or
    HAProxy's next restart or reload. Returns the status before and after.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_haproxy.drain postgres02
    """
    return _set_state(server, "drain")


def ready(server: str) -> dict:
    """
    Let a drained (or maintenance) server take connections again (``set
    server postgres/<name> state ready``). Returns the status before and
    after.

    CLI Example:

    .. code-block:: bash

        salt haproxy pgha_haproxy.ready postgres02
    """
    return _set_state(server, "ready")
