"""
The etcd cluster that pgha's Patroni uses as its DCS: its members, the
health of each endpoint, and membership changes (add, remove), through
python-etcd3 (the v3 gRPC API).

Endpoints come from the pgha pillar (``pgha_config.mapdata``). Needs the PyPI
package ``etcd3`` in Salt's Python; with protobuf 4 and later it runs the
pure-Python protobuf implementation, selected here before protobuf loads.
"""

from __future__ import annotations

import logging
import os
import re
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "etcd_cluster"

# etcd3's generated code predates protobuf 4: keep protobuf on its pure-Python
# implementation, which still loads it. Must happen before protobuf is imported.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
try:
    import etcd3

    HAS_ETCD3 = True
    IMPORT_ERROR = ""
except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
    HAS_ETCD3 = False
    IMPORT_ERROR = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

TIMEOUT = 3
_PEER_URL = re.compile(r"^https?://[^/\s:]+(:\d+)?$|^https?://\[[0-9A-Fa-f:.]+\](:\d+)?$")


def __virtual__():
    if not HAS_ETCD3:
        return (False, f"etcd_cluster: python-etcd3 (PyPI etcd3) cannot be imported: {IMPORT_ERROR}")
    return __virtualname__


def _endpoints() -> list[tuple[str, str, int]]:
    cfg = __salt__["pgha_config.mapdata"]()
    port = cfg["etcd"]["client_port"]
    return [(name, cfg["nodes"][name]["address"], port) for name in cfg["etcd_nodes"]]


def _client(host: str, port: int):
    return etcd3.client(host=host, port=port, timeout=TIMEOUT)


def _describe(member, name: str | None = None) -> dict:
    return {
        "id": f"{member.id:x}",
        "name": member.name or name or "",
        "peer_urls": list(member.peer_urls),
        "client_urls": list(member.client_urls),
    }


def _error_text(exc: Exception) -> str:
    """
    etcd's own words for a failed call. python-etcd3 re-raises gRPC errors as
    its own exception classes without their text; the gRPC error it replaced
    still carries etcd's message.
    """
    for candidate in (exc, exc.__cause__, exc.__context__):
        details = getattr(candidate, "details", None)
        if callable(details):
            code = candidate.code() if callable(getattr(candidate, "code", None)) else None
            text = details() or ""
            return f"{text} ({getattr(code, 'name', code)})" if code is not None else text
    return str(exc) or type(exc).__name__


def _unreachable(exc: Exception) -> bool:
    if HAS_ETCD3 and isinstance(exc, (etcd3.exceptions.ConnectionFailedError, etcd3.exceptions.ConnectionTimeoutError)):
        return True
    code = getattr(exc, "code", None)
    name = getattr(code(), "name", "") if callable(code) else ""
    return name in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def _with_client(action: str, call):
    """
    Run ``call(client)`` against the first endpoint that answers; an answer
    of etcd that refuses the change is raised at once, not retried.
    """
    problems = []
    for name, host, port in _endpoints():
        try:
            client = _client(host, port)
        except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
            problems.append(f"{name} ({host}:{port}): {_error_text(exc)}")
            continue
        try:
            return call(client)
        except CommandExecutionError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            if _unreachable(exc):
                problems.append(f"{name} ({host}:{port}): {_error_text(exc)}")
                continue
            raise CommandExecutionError(f"etcd_cluster: {action} refused by {name} ({host}:{port}): {_error_text(exc)}") from exc
        finally:
            client.close()
    raise CommandExecutionError(f"etcd_cluster: {action}: no endpoint answered: " + "; ".join(problems))


def members() -> list[dict]:
    """
    The etcd cluster's members: id, name, peer and client URLs, as the first
    reachable endpoint reports them.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.members
    """
    problems = []
    for name, host, port in _endpoints():
        try:
            client = _client(host, port)
            try:
                return sorted(
                    (
                        {
                            "id": f"{member.id:x}",
                            "name": member.name,
                            "peer_urls": list(member.peer_urls),
                            "client_urls": list(member.client_urls),
                        }
                        for member in client.members
                    ),
                    key=lambda member: member["name"],
                )
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
            problems.append(f"{name} ({host}:{port}): {exc}")
    raise CommandExecutionError("etcd_cluster: no endpoint answered: " + "; ".join(problems))


def health() -> dict:
    """
    Each endpoint's health: reachable, whether it is the raft leader, raft
    term and index, database size, version; and ``healthy`` for the whole
    (every endpoint reachable and all agreeing on one leader).

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.health
    """
    endpoints = {}
    leaders = set()
    for name, host, port in _endpoints():
        entry: dict = {"endpoint": f"{host}:{port}", "reachable": False}
        try:
            client = _client(host, port)
            try:
                status = client.status()
                entry.update(
                    reachable=True,
                    leader=status.leader.name if status.leader else None,
                    is_leader=bool(status.leader and status.leader.name == name),
                    raft_term=status.raft_term,
                    raft_index=status.raft_index,
                    db_size=status.db_size,
                    version=status.version,
                )
                leaders.add(entry["leader"])
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
            entry["error"] = str(exc) or type(exc).__name__
        endpoints[name] = entry
    healthy = bool(endpoints) and all(e["reachable"] for e in endpoints.values()) and len(leaders) == 1 and None not in leaders
    return {"healthy": healthy, "endpoints": endpoints}


def wait_healthy(timeout: int = 60, interval: float = 1.0) -> dict:
    """
    Wait, at most ``timeout`` seconds, until every etcd endpoint answers and
    they agree on a leader. Fails with what was seen last.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.wait_healthy timeout=60
    """
    deadline = time.monotonic() + float(timeout)
    while True:
        seen = health()
        if seen["healthy"]:
            return seen
        if time.monotonic() >= deadline:
            detail = "; ".join(
                f"{name}: {e.get('error') or ('leader ' + str(e.get('leader')))}" for name, e in seen["endpoints"].items()
            )
            raise CommandExecutionError(
                f"etcd_cluster: expected every endpoint reachable with one leader within {timeout} s; saw: {detail}"
            )
        time.sleep(interval)


def member_add(name: str, peer_url: str) -> dict:
    """
    Add a member to the etcd cluster (``MemberAdd``), announced by its peer
    URL; then start etcd on it with ``name``, the returned
    ``initial_cluster`` and ``initial_cluster_state: existing``. Fails when
    the name or the peer URL is already a member's.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.member_add etcd02 http://10.131.0.7:2380
    """
    if not name or not isinstance(name, str):
        raise CommandExecutionError("etcd_cluster: member_add needs the new member's name")
    if not isinstance(peer_url, str) or not _PEER_URL.match(peer_url):
        raise CommandExecutionError(
            f"etcd_cluster: peer_url must be a URL such as http://10.131.0.7:2380 (got {peer_url!r})"
        )

    def add(client) -> dict:
        current = [_describe(member) for member in client.members]
        for member in current:
            if member["name"] == name or peer_url in member["peer_urls"]:
                raise CommandExecutionError(
                    f"etcd_cluster: {name} ({peer_url}) is already a member: id {member['id']}, "
                    f"name {member['name'] or '(not started)'}, peer URLs {', '.join(member['peer_urls'])}"
                )
        added = _describe(client.add_member([peer_url]), name)
        peers = [(member["name"], url) for member in current for url in member["peer_urls"] if member["name"]]
        peers.append((name, peer_url))
        added["initial_cluster"] = ",".join(f"{peer}={url}" for peer, url in peers)
        added["initial_cluster_state"] = "existing"
        return added

    return _with_client(f"adding member {name} ({peer_url})", add)


def member_remove(name: str) -> dict:
    """
    Remove a member from the etcd cluster (``MemberRemove``), named by its
    name or its hexadecimal id. Returns the member removed. Stop etcd on it
    and clear its data directory before it ever joins again.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.member_remove etcd02
    """
    if not name:
        raise CommandExecutionError("etcd_cluster: member_remove needs the member's name or hex id")

    def remove(client) -> dict:
        current = list(client.members)
        found = [member for member in current if member.name == name or f"{member.id:x}" == str(name).lower()]
        if not found:
            known = ", ".join(sorted(member.name or f"{member.id:x}" for member in current))
            raise CommandExecutionError(f"etcd_cluster: no member named {name} (members: {known or 'none'})")
        target = found[0]
        client.remove_member(target.id)
        return _describe(target)

    return _with_client(f"removing member {name}", remove)
