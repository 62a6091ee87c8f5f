"""
The one model of a pgha cluster: the formula's defaults merged with the
``pgha`` pillar, checked (``pgha_schema``'s table and ``pgha_rules``), and
derived once into a ``Cluster`` as one minion (or the master) sees it:
nodes and roles, addresses, the bootstrap leader and the replicas, the
etcd and REST API endpoints, HAProxy's listeners, every derived default,
and the paths under the host's root. The secrets are kept apart
(``Secrets``) and masked unless asked for.

Every consumer reads it: ``pgha_config.mapdata`` (the states' map), the
modules, the runner, the orchestration's Jinja, the lab and the benchmark.
``build`` is the one function that makes it. Plain Python on the standard
library; its sibling utilities are loaded from beside this file (Salt's
loader keeps ``_utils`` out of ``sys.path``), so the lab and the tests can
use it without Salt.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from typing import Any, NamedTuple

MASK = "********"
# lookup keys whose values are paths placed under the minion's root.
ROOTED_SUFFIXES = ("_file", "_dir", "socket", "pidfile")
NOT_ROOTED = {"bin_dir"}
PATRONI_EXTRAS = ("etcd3", "psycopg3")
# HAProxy's read paths beside the leader's port: pillar key -> Patroni's health check.
READ_CHECKS = {"replicas": "/replica", "sync": "/sync", "async": "/async"}
# Sections whose ``tls`` files live under the host's root.
TLS_SECTIONS = ("etcd", "postgresql", "monitor")
TLS_FILES = ("ca_file", "cert_file", "key_file")
_SIBLINGS: dict[str, Any] = {}


class ModelError(ValueError):
    """A pillar the model refuses; ``errors`` names every wrong key."""

    def __init__(self, errors: list[str]):
        super().__init__("pgha: the pillar is invalid, nothing was changed:\n  " + "\n  ".join(errors))
        self.errors = errors


class Node(NamedTuple):
    id: str
    address: str
    roles: tuple


class Listener(NamedTuple):
    """One of HAProxy's listeners: its name, the client path, port, Patroni's check and balancing."""
    name: str
    path: str
    port: int
    check: str
    balance: str | None


class Etcd(NamedTuple):
    scheme: str
    client_urls: dict
    peer_urls: dict
    hosts: tuple
    initial_cluster: str
    cafile: str | None
    auth: bool
    prefix: str


class HAProxy(NamedTuple):
    write_address: str | None
    port: int
    stats_url: str
    listeners: tuple


class Pooler(NamedTuple):
    enabled: bool
    port: int
    pool_mode: str
    node: str | None


class Patroni(NamedTuple):
    ttl: int
    loop_wait: int
    retry_timeout: int
    maximum_lag_on_failover: int
    synchronous_mode: bool | str
    failsafe_mode: bool


class Drill(NamedTuple):
    enabled: bool
    mode: str
    timeout: int
    freeze_s: int
    outage_s: int
    partition_s: int
    alert_timeout: int
    report_dir: str


class Gates(NamedTuple):
    timeout: int
    max_lag_bytes: int


class LockSettings(NamedTuple):
    ttl: int
    wait: int


class Backup(NamedTuple):
    """pgBackRest's settings: on with a backup node; the stanza, the node, its address and repository, the port."""
    enabled: bool
    node: str | None
    address: str | None
    stanza: str
    port: int
    repo_path: str
    config_files: dict
    archive_timeout: int
    from_standby: bool
    max_age_s: int | None
    schedule: dict


class Monitor(NamedTuple):
    """Monitoring: the exporters on, the monitor node and its Prometheus's and Alertmanager's URLs, the scrape jobs."""
    enabled: bool
    node: str | None
    prometheus_url: str | None
    alertmanager_url: str | None
    jobs: list


class Secrets:
    """The cluster's passwords as this host was given them; shown masked, read one by one."""

    def __init__(self, values: dict | None):
        self._values = dict(values or {})

    def get(self, name: str, default: str = "") -> str:
        value = self._values.get(name)
        return value if isinstance(value, str) and value else default

    def names(self) -> list[str]:
        return sorted(self._values)

    def as_dict(self, show: bool = False) -> dict:
        return dict(self._values) if show else {name: MASK for name in self._values}

    def __repr__(self) -> str:
        return f"Secrets({', '.join(self.names())}: masked)"


def merge(base: dict, update: dict | None) -> dict:
    """Recursive merge: maps merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for name, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = merge(merged[name], value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def defaults_in(roots: list[str]) -> dict:
    """The formula's defaults (``pgha/parameters/defaults.yaml``) from the first of ``roots`` (file roots) holding them."""
    import yaml  # pylint: disable=import-outside-toplevel  # PyYAML comes with Salt

    for root in roots:
        path = os.path.join(root, "pgha", "parameters", "defaults.yaml")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                return yaml.safe_load(handle) or {}
    raise ValueError(f"pgha: no pgha/parameters/defaults.yaml under {', '.join(roots) or 'no file root'}: "
                     "is the formula's salt/ directory a file root?")


def sibling(name: str) -> Any:
    """A module of ``_utils`` beside this one, loaded by path once per process and file version."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    tag = f"{path}:{os.stat(path).st_mtime_ns}"
    if tag not in _SIBLINGS:
        spec = importlib.util.spec_from_file_location(f"pgha_sibling_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SIBLINGS[tag] = module
    return _SIBLINGS[tag]


def _host(address: str) -> str:
    return f"[{address}]" if ":" in str(address) else str(address)


def _rooted(lookup: dict, root: str) -> dict:
    out: dict = {}
    for name, value in lookup.items():
        if isinstance(value, dict):
            out[name] = _rooted(value, root)
        elif isinstance(value, str) and value.startswith("/") and name not in NOT_ROOTED \
                and name.endswith(ROOTED_SUFFIXES):
            out[name] = root + value
        else:
            out[name] = value
    return out


def own_roles(given: dict, minion_id: str) -> list[str]:
    """This minion's roles in pgha:nodes as written (a minion is given, and checks, its roles' secrets only)."""
    nodes = given.get("nodes") if isinstance(given.get("nodes"), dict) else {}
    node = nodes.get(minion_id)
    roles = node.get("roles") if isinstance(node, dict) else None
    return [role for role in roles if isinstance(role, str)] if isinstance(roles, list) else []


def check(defaults: dict, given: dict, minion_id: str, secrets_of: str = "own") -> list[str]:
    """
    Every problem of ``given`` (the pgha pillar as written) over
    ``defaults``: the table, the rules, and the secrets of this minion's
    roles (``secrets_of="own"``), of every role (``"all"``: the master) or
    none (``"none"``).
    """
    if not isinstance(given, dict):
        return ["pgha: must be a map"]
    roles = {"own": own_roles(given, minion_id), "all": None, "none": []}[secrets_of]
    rules = sibling("pgha_rules").RULES + sibling("pgha_monitoring").RULES
    return sibling("pgha_schema").problems(
        merge(defaults, given), given, defaults, rules, given=given, roles=roles,
        modes=sibling("pgha_faults").modes(), secrets=sibling("pgha_secrets"), schedule=sibling("pgha_schedule"))


def build(defaults: dict, given: dict, minion_id: str, secrets_of: str = "own") -> Cluster:
    """The cluster as ``minion_id`` sees it; ``ModelError`` naming every wrong key when the pillar is invalid."""
    errors = check(defaults, given, minion_id, secrets_of)
    if errors:
        raise ModelError(errors)
    return Cluster(derive(merge(defaults, given), minion_id), minion_id)


def derive(cfg: dict, minion_id: str) -> dict:
    """The map of one minion from a merged, valid configuration: every derived value, paths under its root."""
    data = copy.deepcopy(cfg)
    nodes = data["nodes"]
    by_role = {role: sorted(n for n, node in nodes.items() if role in node["roles"])
               for role in ("etcd", "postgresql", "haproxy", "backup", "monitor")}
    node = nodes.get(minion_id, {"address": None, "roles": []})
    raw_lookup, template = data["lookup"], data["lookup"]["root"]
    root = template.replace("{id}", minion_id)
    data["lookup"] = dict(_rooted(data["lookup"], root), root=root)
    data.update(id=minion_id, node=dict(node, id=minion_id), roles=list(node["roles"]), pg_nodes=by_role["postgresql"],
                etcd_nodes=by_role["etcd"], haproxy_nodes=by_role["haproxy"], backup_nodes=by_role["backup"])
    leader = data["cluster"]["bootstrap_leader"] or by_role["postgresql"][0]
    data["cluster"]["bootstrap_leader"] = leader
    data["replicas"] = [name for name in by_role["postgresql"] if name != leader]
    for section in TLS_SECTIONS:
        for name in TLS_FILES:
            data[section]["tls"][name] = root + data[section]["tls"][name]
    _backup(data, raw_lookup, lambda name: template.replace("{id}", name), by_role)
    etcd = data["etcd"]
    scheme = etcd["scheme"] = "https" if etcd["tls"]["enabled"] else "http"
    etcd["client_urls"] = {n: f"{scheme}://{_host(nodes[n]['address'])}:{etcd['client_port']}" for n in by_role["etcd"]}
    etcd["peer_urls"] = {n: f"{scheme}://{_host(nodes[n]['address'])}:{etcd['peer_port']}" for n in by_role["etcd"]}
    etcd["hosts"] = [f"{_host(nodes[n]['address'])}:{etcd['client_port']}" for n in by_role["etcd"]]
    etcd["initial_cluster"] = etcd["initial_cluster"] or ",".join(f"{n}={u}" for n, u in etcd["peer_urls"].items())
    restapi = "https" if data["patroni"]["restapi_tls"] else "http"
    data["restapi_urls"] = {n: f"{restapi}://{_host(nodes[n]['address'])}:{data['patroni']['restapi_port']}"
                            for n in by_role["postgresql"]}
    # the CA that verifies the REST API's certificates, on whichever host reads them (the master too)
    data["restapi_cafile"] = data["postgresql"]["tls"]["ca_file"] if restapi == "https" else None
    patroni_paths = data["lookup"]["patroni"]
    if patroni_paths["install"] == "pip":
        patroni_paths["binary"] = patroni_paths["venv_dir"] + "/bin/patroni"
        patroni_paths["patronictl"] = patroni_paths["venv_dir"] + "/bin/patronictl"
        patroni_paths["pip"]["requirement"] = f"patroni[{','.join(PATRONI_EXTRAS)}]=={data['patroni']['version']}"
    if data["patroni"]["watchdog"]["mode"] is False:
        data["patroni"]["watchdog"]["mode"] = "off"
    haproxy = data["haproxy"]
    haproxy["write_address"] = nodes[by_role["haproxy"][0]]["address"] if by_role["haproxy"] else None
    haproxy["listeners"] = _listeners(data)
    sibling("pgha_monitoring").derive(data, _host)
    for hold in ("freeze_s", "partition_s"):
        if data["drill"][hold] is None:
            data["drill"][hold] = data["patroni"]["ttl"] + 10
    return data


def _backup(data: dict, lookup: dict, root_of: Any, by_role: dict) -> None:
    """
    pgBackRest's side of the map: on when a node has the role backup; the
    stanza, the backup node and its repository, and each PostgreSQL node's
    paths as that node has them (the backup node's configuration names
    them all), every path under its own host's root.
    """
    backup, me = data["backup"], data["id"]
    node = by_role["backup"][0] if by_role["backup"] else None
    backup.update(enabled=node is not None, node=node, stanza=backup["stanza"] or data["cluster"]["scope"],
                  address=data["nodes"][node]["address"] if node else None,
                  repo_path=root_of(node or me) + backup["repo_path"],
                  config_files={name: root_of(name) + lookup["pgbackrest"]["config_file"]
                                for name in by_role["postgresql"] + by_role["backup"]})
    backup["pg_hosts"] = [{"id": name, "address": data["nodes"][name]["address"],
                           "data_dir": root_of(name) + lookup["patroni"]["data_dir"],
                           "socket_dir": root_of(name) + lookup["patroni"]["socket_dir"]}
                          for name in by_role["postgresql"]]
    for name in TLS_FILES:
        backup["tls"][name] = root_of(me) + backup["tls"][name]
    every = schedule_interval(backup["schedule"])
    hours = backup["max_age_hours"]
    backup["max_age_s"] = hours * 3600 if hours is not None else (2 * every if every else None)


def schedule_interval(schedule: dict) -> int | None:
    """The longest gap, in seconds, between two scheduled backups (``pgha_schedule.interval``)."""
    return sibling("pgha_schedule").interval(schedule)


def _listeners(data: dict) -> list[dict]:
    """HAProxy's listeners, the leader's port first: name, path, port, Patroni's check, balancing."""
    haproxy = data["haproxy"]
    listeners = [{"name": "postgres", "path": "leader", "port": haproxy["port"], "check": "/primary", "balance": None}]
    for path, check_path in READ_CHECKS.items():
        entry = haproxy[path]
        if entry["enabled"]:
            if path == "replicas":
                lag = entry["max_lag"] if entry["max_lag"] is not None else data["patroni"]["maximum_lag_on_failover"]
                check_path = f"{check_path}?lag={lag}"
            listeners.append({"name": f"postgres_{path}", "path": path, "port": entry["port"], "check": check_path,
                              "balance": "roundrobin"})
    return listeners


def cluster_of(data: dict) -> Cluster:
    """The ``Cluster`` of a map that ``Cluster.as_map(show_secrets=True)`` made (the modules' ``mapdata``)."""
    return Cluster(data, data["id"])


def stats_url(haproxy: dict) -> str:
    """The stats page's CSV URL: its bind address, else the HAProxy node's."""
    host = haproxy.get("stats_bind_address")
    if host in ("*", "0.0.0.0", "::", "", None):
        host = haproxy.get("write_address") or "127.0.0.1"
    return f"http://{_host(host)}:{haproxy['stats_port']}/;csv"


class Cluster:
    """
    The cluster as one minion (or the master) sees it. Typed fields for what
    code reads (nodes, roles, endpoints, timings, the drill's and gates'
    settings, ...); ``settings`` holds the whole derived map, without the
    secrets, for the templates (``as_map``). Read-only by convention:
    ``with_members`` returns a new one.
    """

    def __init__(self, data: dict, minion_id: str):
        self.secrets = Secrets(data.get("secrets"))
        self.settings = {name: value for name, value in data.items() if name != "secrets"}
        data = self.settings
        self.id = minion_id
        self.nodes = {name: Node(name, node["address"], tuple(node["roles"])) for name, node in data["nodes"].items()}
        self.roles = tuple(data["roles"])
        self.pg_nodes, self.etcd_nodes = tuple(data["pg_nodes"]), tuple(data["etcd_nodes"])
        self.haproxy_nodes, self.backup_nodes = tuple(data["haproxy_nodes"]), tuple(data["backup_nodes"])
        self.bootstrap_leader, self.replicas = data["cluster"]["bootstrap_leader"], tuple(data["replicas"])
        self.scope, self.namespace = data["cluster"]["scope"], data["cluster"]["namespace"]
        self.restapi_urls, self.restapi_cafile = dict(data["restapi_urls"]), data["restapi_cafile"]
        etcd = data["etcd"]
        self.etcd = Etcd(etcd["scheme"], dict(etcd["client_urls"]), dict(etcd["peer_urls"]), tuple(etcd["hosts"]),
                         etcd["initial_cluster"], etcd["tls"]["ca_file"] if etcd["tls"]["enabled"] else None,
                         bool(etcd["auth"]["enabled"]), self.namespace + self.scope + "/")
        haproxy = data["haproxy"]
        self.haproxy = HAProxy(haproxy["write_address"], haproxy["port"], stats_url(haproxy),
                               tuple(Listener(**entry) for entry in haproxy["listeners"]))
        pooler = data["pgbouncer"]
        self.pooler = Pooler(bool(pooler["enabled"]), pooler["port"], pooler["pool_mode"],
                             self.haproxy_nodes[0] if pooler["enabled"] and self.haproxy_nodes else None)
        self.patroni = Patroni(*(data["patroni"][name] for name in Patroni._fields))
        self.drill = Drill(*(data["drill"][name] for name in Drill._fields))
        self.gates = Gates(*(data["gates"][name] for name in Gates._fields))
        self.lock = LockSettings(*(data["lock"][name] for name in LockSettings._fields))
        self.backup = Backup(*(data["backup"][name] for name in Backup._fields))
        self.monitor = Monitor(*(data["monitor"][name] for name in Monitor._fields))
        self.users = dict(data["users"])
        self.probe_database = data["probe"]["database"]
        self.purge_data = bool(data["retire"]["purge_data"])

    def address(self, name: str | None) -> str | None:
        """A node's address (None for None)."""
        return self.nodes[name].address if name else None

    def as_map(self, show_secrets: bool = False) -> dict:
        """The map the states read (``map.jinja``): the settings, with the secrets shown or masked."""
        return dict(copy.deepcopy(self.settings), secrets=self.secrets.as_dict(show_secrets))

    def with_members(self, members: list[dict]) -> Cluster:
        """
        This cluster counting every Patroni member there is as a PostgreSQL
        node, each at the address Patroni has for it: while members pillar no
        longer lists are leaving, the drill's gates count them until they left.
        """
        data = self.as_map(show_secrets=True)
        for member in members:
            data["nodes"].setdefault(member["name"], {"address": member["host"], "roles": ["postgresql"]})
        data["pg_nodes"] = sorted({m["name"] for m in members} | set(self.pg_nodes))
        return Cluster(data, self.id)

    def __repr__(self) -> str:
        return f"Cluster({self.scope} as {self.id}: {', '.join(self.nodes)})"
