"""
Monitoring's side of the model: whether it is on (a node of role monitor,
or ``monitor:exporters``), the rules between its keys, and the scrape jobs
Prometheus gets (``jobs``): one list that the Prometheus configuration, the
orchestration's gate on the targets and the documentation read.

The alerts each drill mode expects (``EXPECTED``) live here too: the drill
reads them. Plain Python on the standard library, loaded beside
``pgha_model`` (``sibling``) or as ``__utils__["pgha_monitoring.<name>"]``.
"""

from __future__ import annotations

import re
from typing import Any

# The alert each drill mode expects to fire (and to resolve once the drill healed the cluster).
LEADER_CHANGED = "PatroniLeaderChanged"
EXPECTED = {
    "stop": LEADER_CHANGED,
    "crash": LEADER_CHANGED,
    "switchover": LEADER_CHANGED,
    "freeze": LEADER_CHANGED,
    "dcs-outage": "EtcdMemberDown",
    "etcd-member-loss": "EtcdMemberDown",
    "dcs-loss": "EtcdMemberDown",
    "sync-standby-loss": "PatroniMemberDown",
    # the monitor is on the side that keeps etcd's quorum: it sees the leader change, the cut-off standby down,
    # the leader's last contact with etcd age
    "partition-leader": LEADER_CHANGED,
    "partition-etcd-minority": LEADER_CHANGED,
    "partition-replica": "PatroniMemberDown",
    "partition-leader-dcs": "PatroniDCSContactLost",
}
# Modes whose expected alert must fire for the drill to be ok (the leader moves in them).
REQUIRED = ("stop", "crash", "switchover", "freeze", "partition-leader", "partition-etcd-minority")
# Prometheus's durations (its configuration's and rules' `for:`).
_PROM_DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")
PORT_NAMES = ("prometheus", "alertmanager", "node_exporter", "postgres_exporter", "pgbouncer_exporter", "haproxy")


def key(*parts: Any) -> str:
    return ":".join(["pgha", *[str(part) for part in parts]])


def duration_problem(value: Any) -> str | None:
    """None for a Prometheus duration such as 15s, 1m or 1h30m."""
    if isinstance(value, str) and _PROM_DURATION.fullmatch(value):
        return None
    return f"must be a Prometheus duration such as 15s, 1m or 10m (got {value!r})"


def seconds(value: str) -> float:
    """A Prometheus duration in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(int(number) * units[unit] for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", value))


def monitor_nodes(cfg: dict) -> list[str]:
    nodes = cfg.get("nodes") if isinstance(cfg.get("nodes"), dict) else {}
    return sorted(name for name, node in nodes.items()
                  if isinstance(node, dict) and "monitor" in (node.get("roles") or []))


def enabled(cfg: dict) -> bool:
    """The exporters run: a node has the role monitor, or monitor:exporters says so."""
    switch = (cfg.get("monitor") or {}).get("exporters")
    return bool(monitor_nodes(cfg)) if switch is None else switch is True


# ---------------------------------------------------------------------------
# rules between keys (run with pgha_rules.RULES)
# ---------------------------------------------------------------------------


def one_monitor_node(cfg: dict, **_: Any) -> list[str]:
    """At most one monitor node; exporters off with a monitor node is a contradiction."""
    found, nodes = [], monitor_nodes(cfg)
    if len(nodes) > 1:
        found.append(f"{key('nodes')}: {len(nodes)} nodes have the role monitor ({', '.join(nodes)}); "
                     "Prometheus and Alertmanager run on one")
    if nodes and (cfg.get("monitor") or {}).get("exporters") is False:
        found.append(f"{key('monitor', 'exporters')}: false, but {nodes[0]} has the role monitor and its "
                     "Prometheus scrapes the exporters; remove the role or set null")
    return found


def alertmanager_routes(cfg: dict, **_: Any) -> list[str]:
    """Every receiver a route names is listed, each receiver has a name."""
    am = (cfg.get("monitor") or {}).get("alertmanager") or {}
    receivers, route = am.get("receivers"), am.get("route")
    where = key("monitor", "alertmanager")
    if not isinstance(receivers, list) or not receivers:
        return [f"{where}:receivers: must be a list of receivers, each a map with a name"]
    names, found = [], []
    for index, receiver in enumerate(receivers):
        name = receiver.get("name") if isinstance(receiver, dict) else None
        if not isinstance(name, str) or not name:
            found.append(f"{where}:receivers:{index}: must be a map with a name")
        names.append(name)
    if not isinstance(route, dict):
        return found + [f"{where}:route: must be a map with a receiver"]

    def walk(entry: Any, path: str) -> None:
        if not isinstance(entry, dict):
            found.append(f"{path}: must be a map")
            return
        if "receiver" in entry and entry["receiver"] not in names:
            found.append(f"{path}:receiver: {entry['receiver']!r} is not among the receivers "
                         f"({', '.join(str(n) for n in names)})")
        for index, child in enumerate(entry.get("routes") or []):
            walk(child, f"{path}:routes:{index}")

    if "receiver" not in route:
        found.append(f"{where}:route:receiver: required (the default receiver)")
    walk(route, f"{where}:route")
    return found


def monitor_ports(cfg: dict, **_: Any) -> list[str]:
    """The monitoring ports are distinct from each other and from every other port the cluster uses on a host."""
    if not enabled(cfg):
        return []
    ports = (cfg.get("monitor") or {}).get("ports") or {}
    found, seen = [], {}
    for name in PORT_NAMES:
        value = ports.get(name)
        if value in seen:
            found.append(f"{key('monitor', 'ports', name)}: {value} is also monitor:ports:{seen[value]}")
        seen[value] = name
    others = {"etcd client port": cfg["etcd"].get("client_port"), "etcd peer port": cfg["etcd"].get("peer_port"),
              "PostgreSQL": cfg["postgresql"].get("port"), "Patroni REST API": cfg["patroni"].get("restapi_port"),
              "HAProxy": cfg["haproxy"].get("port"), "HAProxy stats page": cfg["haproxy"].get("stats_port"),
              "pgBackRest's server": cfg["backup"].get("port"), "PgBouncer": cfg["pgbouncer"].get("port")}
    for name in PORT_NAMES:
        for what, port in others.items():
            if ports.get(name) == port:
                found.append(f"{key('monitor', 'ports', name)}: {port} is the {what}'s port too")
    return found


RULES = (one_monitor_node, alertmanager_routes, monitor_ports)


# ---------------------------------------------------------------------------
# the derived map
# ---------------------------------------------------------------------------


def derive(data: dict, host: Any) -> None:
    """
    ``data["monitor"]`` completed (after the model set the nodes by role):
    enabled, the node and its URLs, the scrape jobs (``jobs``) and the
    exporters this minion runs (``exporters_here``: the states and their
    clean read it); ``host`` formats an address for a URL.
    """
    monitor, nodes = data["monitor"], data["nodes"]
    node = (monitor_nodes(data) or [None])[0]
    ports = monitor["ports"]
    address = host(nodes[node]["address"]) if node else None
    monitor.update(enabled=enabled(data), node=node, address=nodes[node]["address"] if node else None,
                   prometheus_url=f"http://{address}:{ports['prometheus']}" if node else None,
                   alertmanager_url=f"http://{address}:{ports['alertmanager']}" if node else None)
    monitor["jobs"] = jobs(data, host) if monitor["enabled"] else []
    pooler = data["pgbouncer"]["enabled"] and data["haproxy_nodes"][:1] == [data["id"]]
    monitor["exporters_here"] = [name for name, here in (
        ("node_exporter", True), ("postgres_exporter", "postgresql" in data["roles"]), ("pgbouncer_exporter", pooler))
        if here] if monitor["enabled"] else []
    # a scrape's bound: Prometheus's 10 s default, never above the interval
    monitor["scrape_timeout"] = monitor["scrape_interval"] if seconds(monitor["scrape_interval"]) < 10 else "10s"


def jobs(data: dict, host: Any) -> list[dict]:
    """
    Prometheus's scrape jobs: name, scheme, the CA that verifies the target
    (None: plain http), and the targets as {node, address:port}.
    """
    nodes, ports = data["nodes"], data["monitor"]["ports"]

    def job(name: str, names: list[str], port: int, ca: str | None = None) -> dict:
        return {"job": name, "scheme": "https" if ca else "http", "ca": ca,
                "targets": [{"node": n, "target": f"{host(nodes[n]['address'])}:{port}"} for n in names]}

    exporters_ca = "monitor" if data["monitor"]["tls"]["enabled"] else None
    out = [
        job("patroni", data["pg_nodes"], data["patroni"]["restapi_port"],
            "postgresql" if data["patroni"]["restapi_tls"] else None),
        job("etcd", data["etcd_nodes"], data["etcd"]["client_port"], "etcd" if data["etcd"]["tls"]["enabled"] else None),
        job("postgres", data["pg_nodes"], ports["postgres_exporter"], exporters_ca),
        job("haproxy", data["haproxy_nodes"], ports["haproxy"]),
    ]
    if data["pgbouncer"]["enabled"] and data["haproxy_nodes"]:
        out.append(job("pgbouncer", data["haproxy_nodes"][:1], ports["pgbouncer_exporter"]))
    return out + [job("node", sorted(nodes), ports["node_exporter"], exporters_ca)]
