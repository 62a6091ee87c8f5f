"""
The rules between keys of the ``pgha`` pillar, each a small named function
of the merged configuration that returns its problems as
``pgha:<key path>: <problem>`` lines (none when the rule holds): what one
key's value cannot say alone (a node's roles, ports and names that must
differ, timings that must fit together, flags that need another flag). The
table of single values is ``pgha_schema.SCHEMA``; ``RULES`` lists these in
the order their problems are reported.

Every rule takes ``cfg`` (merged with the defaults, sections already maps)
and keyword context: ``given`` (the pillar as written), ``modes`` (the
drill's), ``secrets`` (the policy of ``pgha_secrets``: ``needed``,
``everyone``, ``problems``) and ``roles`` (this minion's roles; None: every
role's secrets are checked). Plain Python on the standard library.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

ROLES = ("etcd", "postgresql", "haproxy", "backup", "monitor")
# The roles a cluster cannot do without (backup and monitor are optional).
REQUIRED_ROLES = ("etcd", "postgresql", "haproxy")
NODE_KEYS = ("address", "roles")
READ_PATHS = ("replicas", "sync", "async")
TLS_FILES = ("ca_file", "cert_file", "key_file")
HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
HBA_METHODS = ("scram-sha-256", "md5", "cert", "reject", "peer", "gss", "ldap", "radius", "pam")
HBA_KEYS = ("type", "database", "user", "address", "method")
SAFE_PATRONI = (3, 1)
UNSAFE_PATRONI_REASON = (
    "Patroni before 3.1 can lose acknowledged writes when a frozen leader wakes up (fixed in 3.1.0)"
)
# The PostgreSQL roles the formula makes or logs in as: each must be a role of its own.
POSTGRESQL_ROLES = ("superuser", "replication", "admin", "probe", "pooler", "monitor")
_MINION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_RELEASE = re.compile(r"\d+\.\d+\.\d+")
_VERSION_IN_TEXT = re.compile(r"(?:^|[\s:])(\d+\.\d+(?:\.\d+)?)")


def key(*parts: Any) -> str:
    return ":".join(["pgha", *[str(part) for part in parts]])


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def version_tuple(text: Any) -> tuple[int, ...] | None:
    """(4, 1, 5) from '4.1.5', 'patroni 4.1.5' or a Debian version such as '3.0.2-1'; None if there is none."""
    if not isinstance(text, str):
        return None
    match = _VERSION_IN_TEXT.search(text.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def safe_patroni() -> tuple[tuple[int, ...], str]:
    """The oldest Patroni the formula runs, and why."""
    return SAFE_PATRONI, UNSAFE_PATRONI_REASON


def roles_of(cfg: dict) -> dict[str, list[str]]:
    """role -> the nodes that have it, in pillar's order (nodes as they are, checked or not)."""
    nodes = cfg.get("nodes") if isinstance(cfg.get("nodes"), dict) else {}
    by_role: dict[str, list[str]] = {role: [] for role in ROLES}
    for node_id, node in nodes.items():
        roles = node.get("roles") if isinstance(node, dict) else None
        for role in roles if isinstance(roles, list) else []:
            if isinstance(role, str) and role in by_role and node_id not in by_role[role]:
                by_role[role].append(node_id)
    return by_role


# ---------------------------------------------------------------------------
# the nodes
# ---------------------------------------------------------------------------


def _address_problem(address: Any) -> str | None:
    try:
        if address is None:
            raise ValueError
        parsed = ipaddress.ip_address(str(address))
    except ValueError:
        return f"must be an IP address (got {address!r})"
    if parsed.is_unspecified or parsed.is_multicast:
        return f"must be the node's own unicast address (got {address})"
    return None


def node_entries(cfg: dict, **_: Any) -> list[str]:
    """Each node: a valid minion id, a map of its own unicast address and a non-empty list of known roles."""
    nodes = cfg.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        return [f"{key('nodes')}: must map each minion id to its address and roles; none given"]
    found = []
    for node_id, node in nodes.items():
        if not isinstance(node_id, str) or not _MINION_ID.fullmatch(node_id):
            found.append(f"{key('nodes', node_id)}: not a valid minion id")
        if not isinstance(node, dict):
            found.append(f"{key('nodes', node_id)}: must be a map with address and roles")
            continue
        found += [f"{key('nodes', node_id, name)}: unknown key (typo?); known keys here: address, roles"
                  for name in node if name not in NODE_KEYS]
        problem = _address_problem(node.get("address"))
        if problem:
            found.append(f"{key('nodes', node_id, 'address')}: {problem}")
        roles = node.get("roles")
        if not isinstance(roles, list) or not roles:
            found.append(f"{key('nodes', node_id, 'roles')}: must be a non-empty list of {', '.join(ROLES)}")
            continue
        found += [f"{key('nodes', node_id, 'roles')}: unknown role {role!r}; roles are {', '.join(ROLES)}"
                  for role in roles if not isinstance(role, str) or role not in ROLES]
        names = [role for role in roles if isinstance(role, str)]
        if len(set(names)) != len(names):
            found.append(f"{key('nodes', node_id, 'roles')}: a role is listed twice")
    return found


def every_role_present(cfg: dict, **_: Any) -> list[str]:
    """The cluster needs at least one node of each role."""
    if not isinstance(cfg.get("nodes"), dict) or not cfg["nodes"]:
        return []
    by_role = roles_of(cfg)
    return [f"{key('nodes')}: no node has the role {role!r}; the cluster needs one" for role in REQUIRED_ROLES
            if not by_role[role]]


def one_backup_node_apart(cfg: dict, **_: Any) -> list[str]:
    """At most one backup node (one repository), and not a PostgreSQL node: its loss must not take the backups too."""
    by_role, found = roles_of(cfg), []
    if len(by_role["backup"]) > 1:
        found.append(f"{key('nodes')}: {len(by_role['backup'])} nodes have the role backup "
                     f"({', '.join(by_role['backup'])}); the repository lives on one")
    found += [f"{key('nodes', node_id, 'roles')}: backup and postgresql on one node; the repository must not "
              "live on a host whose loss it protects against" for node_id in by_role["backup"]
              if node_id in by_role["postgresql"]]
    return found


def backup_schedule(cfg: dict, schedule: Any = None, **_: Any) -> list[str]:
    """Each scheduled type a calendar expression the timers and the lab's schedule both read."""
    entries = cfg["backup"].get("schedule")
    if not isinstance(entries, dict) or schedule is None:
        return []
    found = [f"{key('backup', 'schedule', kind)}: {schedule.problem(expr)}" for kind, expr in entries.items()
             if schedule.problem(expr)]
    if not found and roles_of(cfg)["backup"] and all(expr is None for expr in entries.values()) \
            and cfg["backup"].get("max_age_hours") is None:
        found.append(f"{key('backup', 'schedule')}: no type is scheduled; schedule one, or set "
                     "backup:max_age_hours for the backups you take yourself (pgha.check needs a bound)")
    return found


def odd_etcd_members(cfg: dict, **_: Any) -> list[str]:
    """An even number of etcd members tolerates no more failures than one fewer, and risks a split vote."""
    members = len(roles_of(cfg)["etcd"])
    if members and members % 2 == 0:
        return [(f"{key('nodes')}: {members} etcd members; use an odd number "
                "(an even one tolerates no more failures and risks a split vote)")]
    return []


def bootstrap_leader_is_a_postgresql_node(cfg: dict, **_: Any) -> list[str]:
    leader = cfg["cluster"].get("bootstrap_leader")
    postgresql = roles_of(cfg)["postgresql"]
    if leader is not None and leader not in postgresql:
        return [(f"{key('cluster', 'bootstrap_leader')}: {leader!r} is not a postgresql node "
                f"(postgresql nodes: {', '.join(sorted(postgresql)) or 'none'})")]
    return []


def ports_distinct(cfg: dict, **_: Any) -> list[str]:
    """No two services of the cluster on one address and port ('*' binds the node's own address)."""
    nodes = cfg.get("nodes") if isinstance(cfg.get("nodes"), dict) else {}
    by_role, seen, found = roles_of(cfg), {}, []

    def use(node_id: str, port: Any, what: str, bind: Any = None) -> None:
        node = nodes.get(node_id) if isinstance(nodes.get(node_id), dict) else {}
        address = str(bind if bind not in (None, "*") else node.get("address"))
        try:
            address = ipaddress.ip_address(address).compressed
        except ValueError:
            pass
        if not is_int(port):
            return
        if (address, port) in seen:
            found.append(f"{key('nodes', node_id)}: {what} on {address}:{port} collides with {seen[(address, port)]}")
            return
        seen[(address, port)] = f"{what} of {node_id}"

    etcd, haproxy, pooler = cfg["etcd"], cfg["haproxy"], cfg["pgbouncer"]
    for node_id in by_role["etcd"]:
        use(node_id, etcd.get("client_port"), "etcd client port")
        use(node_id, etcd.get("peer_port"), "etcd peer port")
    for node_id in by_role["postgresql"]:
        use(node_id, cfg["postgresql"].get("port"), "PostgreSQL")
        use(node_id, cfg["patroni"].get("restapi_port"), "Patroni REST API")
    if by_role["backup"]:
        for node_id in by_role["backup"] + by_role["postgresql"]:
            use(node_id, cfg["backup"].get("port"), "pgBackRest's server")
    for node_id in by_role["haproxy"]:
        use(node_id, haproxy.get("port"), "HAProxy", haproxy.get("bind_address"))
        use(node_id, haproxy.get("stats_port"), "HAProxy stats page", haproxy.get("stats_bind_address"))
        for path in READ_PATHS:
            entry = haproxy.get(path) if isinstance(haproxy.get(path), dict) else {}
            if entry.get("enabled") is True:
                use(node_id, entry.get("port"), f"HAProxy's {path} port", haproxy.get("bind_address"))
        if pooler.get("enabled") is True:
            use(node_id, pooler.get("port"), "PgBouncer", haproxy.get("bind_address"))
    return found


# ---------------------------------------------------------------------------
# Patroni
# ---------------------------------------------------------------------------


def patroni_timings_fit(cfg: dict, **_: Any) -> list[str]:
    """Patroni's own bound: loop_wait + 2 * retry_timeout <= ttl."""
    patroni = cfg["patroni"]
    ttl, loop_wait, retry = patroni.get("ttl"), patroni.get("loop_wait"), patroni.get("retry_timeout")
    if all(is_int(v) for v in (ttl, loop_wait, retry)) and ttl >= 20 and loop_wait >= 1 and retry >= 3 \
            and loop_wait + 2 * retry > ttl:
        return [(f"{key('patroni', 'ttl')}: loop_wait + 2*retry_timeout must not exceed ttl "
                f"({loop_wait} + 2*{retry} > {ttl})")]
    return []


def restapi_tls_needs_postgresql_tls(cfg: dict, **_: Any) -> list[str]:
    if cfg["patroni"].get("restapi_tls") is True and cfg["postgresql"]["tls"].get("enabled") is not True:
        return [(f"{key('patroni', 'restapi_tls')}: serves the node's certificate of postgresql:tls, "
                "which is not enabled")]
    return []


def strict_needs_synchronous(cfg: dict, **_: Any) -> list[str]:
    patroni = cfg["patroni"]
    if patroni.get("synchronous_mode_strict") is True and patroni.get("synchronous_mode") not in (True, "quorum"):
        return [f"{key('patroni', 'synchronous_mode_strict')}: needs patroni:synchronous_mode: true or quorum"]
    return []


def synchronous_count_fits(cfg: dict, **_: Any) -> list[str]:
    """
    synchronous_node_count against the PostgreSQL nodes: with true, at most every standby; with quorum, a
    voter must be left with one node down (a standby lost, the others still make up the count).
    """
    patroni, count = cfg["patroni"], cfg["patroni"].get("synchronous_node_count")
    if not isinstance(count, int) or isinstance(count, bool):
        return []
    nodes = len(roles_of(cfg)["postgresql"])
    name = key("patroni", "synchronous_node_count")
    if patroni.get("synchronous_mode") == "quorum" and count > nodes - 2:
        return [f"{name}: {count} with synchronous_mode quorum and {nodes} PostgreSQL nodes leaves no voter when "
                f"one is down: at most {nodes - 2}" + ("" if nodes >= 3 else " (quorum needs three nodes or more)")]
    if patroni.get("synchronous_mode") is True and count > nodes - 1:
        return [f"{name}: {count} synchronous standbys, yet {nodes} PostgreSQL nodes have {nodes - 1} standbys"]
    return []


def patroni_version_safe(cfg: dict, **_: Any) -> list[str]:
    """Patroni before 3.1 only with allow_unsafe_version (to measure the old behaviour)."""
    version = cfg["patroni"].get("version")
    found = version_tuple(version) if isinstance(version, str) and _RELEASE.fullmatch(version) else None
    if found and found < SAFE_PATRONI and cfg["patroni"].get("allow_unsafe_version") is not True:
        return [(f"{key('patroni', 'version')}: {version} is older than 3.1: {UNSAFE_PATRONI_REASON}; "
                "use 3.1 or later (4.1.5 is the tested release; patroni:allow_unsafe_version: true only to "
                "measure the old behaviour, never in production)")]
    return []


def watchdog_required_needs_systemd(cfg: dict, **_: Any) -> list[str]:
    watchdog = cfg["patroni"]["watchdog"]
    if watchdog.get("mode") == "required" and cfg["lookup"].get("service_manager") == "supervisord":
        return [(f"{key('patroni', 'watchdog', 'mode')}: required needs a watchdog device, which the formula "
                "prepares on systemd hosts only; with lookup:service_manager: supervisord (containers, the lab) "
                "use off or automatic")]
    return []


def watchdog_timeout_fits(cfg: dict, **_: Any) -> list[str]:
    """The watchdog's timeout (ttl - safety_margin, or ttl/2) must be at least loop_wait and 1 s."""
    patroni, watchdog = cfg["patroni"], cfg["patroni"]["watchdog"]
    mode, margin = watchdog.get("mode"), watchdog.get("safety_margin")
    ttl, loop_wait = patroni.get("ttl"), patroni.get("loop_wait")
    if mode not in ("automatic", "required") or not all(is_int(v) for v in (margin, ttl, loop_wait)) or margin < -1:
        return []
    timeout = ttl // 2 if margin == -1 else ttl - margin
    if timeout < loop_wait or timeout < 1:
        return [(f"{key('patroni', 'watchdog', 'safety_margin')}: the watchdog's timeout "
                f"({'ttl/2' if margin == -1 else 'ttl - safety_margin'} = {timeout} s) must be at least "
                f"loop_wait ({loop_wait} s) and 1 s, or Patroni runs without the watchdog")]
    return []


def _path_problem(value: Any, what: str) -> str | None:
    if not isinstance(value, str) or not value.startswith("/") or (value.endswith("/") and value != "/") \
            or any(ch.isspace() for ch in value):
        return f"must be an absolute {what} without spaces (got {value!r})"
    return None


def pip_install_settings(cfg: dict, given: dict | None = None, **_: Any) -> list[str]:
    """With install: pip, a Python and a virtualenv directory; binary and patronictl are derived, not set."""
    paths = cfg["lookup"]["patroni"]
    if paths.get("install") != "pip":
        return []
    found = []
    for name, what in (("python", "path of a Python"), ("venv_dir", "directory")):
        problem = _path_problem(paths.get(name), what)
        if problem:
            found.append(f"{key('lookup', 'patroni', name)}: {problem}")
    if paths.get("venv_dir") == "/":
        found.append(f"{key('lookup', 'patroni', 'venv_dir')}: must not be /")
    lookup = (given or {}).get("lookup") if isinstance((given or {}).get("lookup"), dict) else {}
    written = lookup.get("patroni") if isinstance(lookup.get("patroni"), dict) else {}
    found += [f"{key('lookup', 'patroni', name)}: derived from venv_dir with install: pip "
              f"(<venv_dir>/bin/{'patroni' if name == 'binary' else 'patronictl'}); set it only with "
              "install: package" for name in ("binary", "patronictl") if name in written]
    pip = paths.get("pip") if isinstance(paths.get("pip"), dict) else {}
    if pip.get("wheel_dir") is not None and pip.get("index_url") is not None:
        found.append(f"{key('lookup', 'patroni', 'pip', 'wheel_dir')}: installs with --no-index: "
                     "set either wheel_dir or index_url, not both")
    return found


def package_install_needs_a_package(cfg: dict, **_: Any) -> list[str]:
    paths = cfg["lookup"]["patroni"]
    if paths.get("install") == "package" and paths.get("pkgs") == []:
        return [f"{key('lookup', 'patroni', 'pkgs')}: install: package needs at least Patroni's package"]
    return []


def unit_file_named_after_the_service(cfg: dict, **_: Any) -> list[str]:
    paths = cfg["lookup"]["patroni"]
    unit, service = paths.get("unit_file"), paths.get("service")
    if isinstance(unit, str) and unit.startswith("/") and isinstance(service, str) \
            and os.path.basename(unit) != f"{service}.service":
        return [(f"{key('lookup', 'patroni', 'unit_file')}: must be named after the service "
                f"({service}.service; got {os.path.basename(unit)})")]
    return []


# ---------------------------------------------------------------------------
# TLS, pg_hba, names
# ---------------------------------------------------------------------------


def tls_files(cfg: dict, **_: Any) -> list[str]:
    """With TLS on: three distinct absolute file paths; the require flags need TLS on."""
    found = []
    backup = bool(roles_of(cfg)["backup"])
    for section, flags in (("etcd", ()), ("postgresql", ("require_clients", "require_replication")), ("backup", ()),
                           ("monitor", ())):
        tls = cfg[section]["tls"] if isinstance(cfg[section].get("tls"), dict) else {}
        found += [f"{key(section, 'tls', flag)}: needs {section}:tls:enabled true" for flag in flags
                  if tls.get(flag) is True and tls.get("enabled") is not True]
        # pgBackRest's servers always speak TLS: its files are needed whenever a node has the role backup
        if (tls.get("enabled") is not True) if section != "backup" else not backup:
            continue
        paths: dict = {}
        for name in TLS_FILES:
            value = tls.get(name)
            if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
                found.append(f"{key(section, 'tls', name)}: must be the absolute path of a file (got {value!r})")
            elif value in paths:
                found.append(f"{key(section, 'tls', name)}: the same file as {section}:tls:{paths[value]}")
            else:
                paths[value] = name
    return found


def _word(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not any(ch.isspace() for ch in value)


def hba_entries(cfg: dict, **_: Any) -> list[str]:
    """Each extra pg_hba entry: known keys, type, database, user, an address unless local, a safe method."""
    entries = cfg["postgresql"].get("pg_hba")
    found = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue  # the table says it must be a map
        path = ("postgresql", "pg_hba", index)
        found += [f"{key(*path, name)}: unknown key; use type, database, user, address, method"
                  for name in entry if name not in HBA_KEYS]
        kind, method = entry.get("type"), entry.get("method")
        if kind not in HBA_TYPES:
            found.append(f"{key(*path, 'type')}: must be one of {', '.join(HBA_TYPES)} (got {kind!r})")
        found += [f"{key(*path, name)}: must be a non-empty word (got {entry.get(name)!r})"
                  for name in ("database", "user") if not _word(entry.get(name))]
        if kind == "local" and "address" in entry:
            found.append(f"{key(*path, 'address')}: not allowed for type local")
        if kind != "local" and "address" not in entry:
            found.append(f"{key(*path, 'address')}: required for type {kind!r}")
        elif kind != "local":
            found += _cidr_problems(entry["address"], path + ("address",))
        if method not in HBA_METHODS:
            found.append(f"{key(*path, 'method')}: must be one of {', '.join(HBA_METHODS)} (got {method!r}; "
                         "trust and password are refused)")
        elif method == "peer" and kind != "local":
            found.append(f"{key(*path, 'method')}: peer works only with type local")
    return found


def _cidr_problems(value: Any, path: tuple) -> list[str]:
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        return [f"{key(*path)}: not a network in CIDR form such as 10.0.0.0/24 ({exc})"]
    return [] if "/" in str(value) else [f"{key(*path)}: give the prefix length, e.g. {value}/32"]


def etcd_users_of_their_own(cfg: dict, **_: Any) -> list[str]:
    """Patroni's and the lock's etcd users: neither is root (etcd's administrator), nor each other."""
    users, found = cfg["users"], []
    for name, whose in (("etcd_patroni", "Patroni"), ("etcd_lock", "the lock")):
        if users.get(name) == "root":
            found.append(f"{key('users', name)}: must not be root (etcd's administrator; {whose} gets a user of "
                         "its own)")
    if users.get("etcd_lock") is not None and users.get("etcd_lock") == users.get("etcd_patroni"):
        found.append(f"{key('users', 'etcd_lock')}: the same etcd user as users:etcd_patroni; the lock's user may "
                     "write its key only, Patroni's the cluster's keys")
    return found


def postgresql_roles_distinct(cfg: dict, **_: Any) -> list[str]:
    """The PostgreSQL roles the formula makes are distinct: one role cannot carry two sets of rights."""
    users, seen, found = cfg["users"], {}, []
    for name in POSTGRESQL_ROLES:
        role = users.get(name)
        if isinstance(role, str) and role in seen:
            found.append(f"{key('users', name)}: {role!r} is already users:{seen[role]}; each PostgreSQL role "
                         "the formula makes must have a name of its own")
        elif isinstance(role, str):
            seen[role] = name
    return found


def probe_database_is_not_the_users(cfg: dict, **_: Any) -> list[str]:
    """The formula's own database is not a database the superuser or the admin role would name as theirs."""
    database = cfg["probe"].get("database")
    if isinstance(database, str) and database in (cfg["users"].get("superuser"), cfg["users"].get("admin")):
        return [(f"{key('probe', 'database')}: {database!r} is the name of users:superuser or users:admin, whose "
                "own database it would be taken for; give the formula's database a name of its own")]
    return []


# ---------------------------------------------------------------------------
# the drill and the secrets
# ---------------------------------------------------------------------------


def drill_mode_known(cfg: dict, modes: tuple | list = (), **_: Any) -> list[str]:
    mode = cfg["drill"].get("mode")
    if modes and mode not in modes:
        return [f"{key('drill', 'mode')}: must be one of {', '.join(modes)} (got {mode!r})"]
    return []


def secrets_of_the_roles(cfg: dict, secrets: Any = None, roles: list | None = None, **_: Any) -> list[str]:
    """The secrets this minion's roles use (``roles`` None: every role's), by the one policy of pgha_secrets."""
    if secrets is None:
        return []
    auth = cfg["etcd"]["auth"].get("enabled") is True
    pooler = cfg["pgbouncer"].get("enabled") is True
    backup = bool(roles_of(cfg)["backup"])
    exporters = cfg.get("monitor", {}).get("exporters")
    monitor = bool(roles_of(cfg)["monitor"]) if exporters is None else exporters is True
    keys = secrets.everyone(auth, pooler, backup, monitor) if roles is None \
        else secrets.needed(roles, auth, pooler, backup, monitor)
    if backup and cfg["backup"].get("cipher_type") == "none":
        keys = [name for name in keys if name not in secrets.BACKUP_SECRETS]
    return secrets.problems(cfg.get("secrets"), keys)


RULES = (node_entries, every_role_present, one_backup_node_apart, backup_schedule, odd_etcd_members, ports_distinct, patroni_timings_fit,
         restapi_tls_needs_postgresql_tls, strict_needs_synchronous, synchronous_count_fits, patroni_version_safe,
         watchdog_required_needs_systemd, watchdog_timeout_fits, pip_install_settings,
         package_install_needs_a_package, unit_file_named_after_the_service, hba_entries,
         bootstrap_leader_is_a_postgresql_node, tls_files, etcd_users_of_their_own, postgresql_roles_distinct,
         probe_database_is_not_the_users, drill_mode_known, secrets_of_the_roles)
