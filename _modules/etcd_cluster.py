"""
The etcd cluster that pgha's Patroni uses as its DCS: its members and the
health of each endpoint, through python-etcd3 (the v3 gRPC API).

Endpoints come from the pgha pillar (``pgha_config.mapdata``). Needs the PyPI
package ``etcd3`` in Salt's Python; with protobuf 4 and later it runs the
pure-Python protobuf implementation, selected here before protobuf loads.
"""

from __future__ import annotations

import logging
import os
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
except Exception as exc:  # pylint: disable=broad-except
    HAS_ETCD3 = False
    IMPORT_ERROR = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

TIMEOUT = 3


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
        except Exception as exc:  # pylint: disable=broad-except
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
        except Exception as exc:  # pylint: disable=broad-except
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
