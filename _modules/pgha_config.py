"""
The pgha model: the formula's parameters merged with pillar, and their validation.

Every entry point of the formula reads the cluster through this module: the
state files (through ``map.jinja``), the other pgha execution modules, and the
orchestration's first gate. It merges ``salt://pgha/parameters/defaults.yaml``,
``salt://pgha/parameters/os_family/<os_family>.yaml``, pillar ``pgha:lookup``
and pillar ``pgha``, derives what every role needs (addresses, endpoints,
paths under the minion's root) and refuses a pillar with mistakes, naming each
wrong key by its full path. It needs nothing but Salt itself.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import os
import re
from typing import Any

import salt.utils.yaml
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_config"

ROLES = ("etcd", "postgresql", "haproxy")
SERVICE_MANAGERS = ("systemd", "supervisord")
# How Patroni is installed (pgha:lookup:patroni:install), and its watchdog modes.
PATRONI_INSTALLS = ("pip", "package")
PATRONI_EXTRAS = ("etcd3", "psycopg3")
WATCHDOG_MODES = ("off", "automatic", "required")
# The oldest Patroni the formula runs, and why.
SAFE_PATRONI = (3, 1)
UNSAFE_PATRONI_REASON = (
    "Patroni before 3.1 can lose acknowledged writes when a frozen leader wakes up (fixed in 3.1.0)"
)
POOL_MODES = ("session", "transaction", "statement")
# HAProxy's read paths beside the leader's port: pillar key -> Patroni's health check.
READ_PATHS = {"replicas": "/replica", "sync": "/sync", "async": "/async"}
# Keys that existed once: what became of them.
RETIRED_KEYS = {
    "lab": "removed: demo passwords are refused everywhere (the lab generates its own passwords); delete this key",
}
HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
HBA_METHODS = ("scram-sha-256", "md5", "cert", "reject", "peer", "gss", "ldap", "radius", "pam")
# Keys under these paths are free-form (names chosen by the operator).
FREE_FORM = {("nodes",), ("postgresql", "parameters"), ("patroni", "tags")}
NODE_KEYS = {"address", "roles"}
# lookup keys whose values are paths placed under the minion's root.
ROOTED_SUFFIXES = ("_file", "_dir", "socket", "pidfile")
NOT_ROOTED = {"bin_dir"}
MASK = "********"
TLS_FILES = ("ca_file", "cert_file", "key_file")
# Which TLS files (pillar <section>:tls) a host needs, by its roles.
TLS_NEEDS = {
    "etcd": {"ca_file": {"etcd", "postgresql"}, "cert_file": {"etcd"}, "key_file": {"etcd"}},
    # the CA on the HAProxy node too, when PgBouncer verifies the servers or HAProxy checks the REST API over https
    "postgresql": {"ca_file": {"postgresql", "haproxy"}, "cert_file": {"postgresql"}, "key_file": {"postgresql"}},
}
_DURATION = re.compile(r"\d+(us|ms|s|m|h|d)?")
_MINION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCOPE = re.compile(r"[A-Za-z0-9_.-]+")
_RELEASE = re.compile(r"\d+\.\d+\.\d+")
_VERSION_IN_TEXT = re.compile(r"(?:^|[\s:])(\d+\.\d+(?:\.\d+)?)")
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
_URL = re.compile(r"(https?|file)://\S+")
_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*=https?://[^,\s/]+")


def __virtual__():
    return __virtualname__


# ---------------------------------------------------------------------------
# merging
# ---------------------------------------------------------------------------


def _merge(base: dict, update: dict) -> dict:
    """Recursive merge: dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _load_yaml(path: str, saltenv: str, required: bool) -> dict:
    cache_key = f"pgha_config.yaml.{saltenv}.{path}"
    if cache_key not in __context__:
        text = __salt__["cp.get_file_str"](path, saltenv=saltenv)
        if not text:
            if required:
                raise CommandExecutionError(
                    f"pgha: cannot read {path}: is the formula in the master's file_roots?"
                )
            text = "{}"
        __context__[cache_key] = salt.utils.yaml.safe_load(text) or {}
    return copy.deepcopy(__context__[cache_key])


def defaults(saltenv: str = "base") -> dict:
    """
    The formula's defaults: ``parameters/defaults.yaml`` merged with the file
    of this minion's os_family.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_config.defaults
    """
    base = _load_yaml("salt://pgha/parameters/defaults.yaml", saltenv, required=True)
    os_family = __grains__.get("os_family", "")
    family = _load_yaml(f"salt://pgha/parameters/os_family/{os_family}.yaml", saltenv, required=False)
    return _merge(base, family)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _key(*parts: Any) -> str:
    return ":".join(["pgha", *[str(part) for part in parts]])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown_keys(given: Any, known: Any, path: tuple, errors: list) -> None:
    if not isinstance(given, dict) or not isinstance(known, dict):
        return
    if path in FREE_FORM:
        return
    for key, value in given.items():
        if key not in known:
            errors.append(f"{_key(*path, key)}: unknown key (typo?); known keys here: {', '.join(sorted(map(str, known)))}")
            continue
        if isinstance(known[key], dict) and not isinstance(value, dict) and path:
            errors.append(f"{_key(*path, key)}: must be a map (got {value!r})")
            continue
        _unknown_keys(value, known[key], path + (key,), errors)


def _check_port(value: Any, path: tuple, errors: list) -> bool:
    if not _is_int(value) or not 1 <= value <= 65535:
        errors.append(f"{_key(*path)}: must be a port number 1-65535 (got {value!r})")
        return False
    return True


def _check_int(value: Any, path: tuple, errors: list, minimum: int) -> bool:
    if not _is_int(value):
        errors.append(f"{_key(*path)}: must be an integer (got {value!r})")
        return False
    if value < minimum:
        errors.append(f"{_key(*path)}: must be at least {minimum} (got {value})")
        return False
    return True


def _check_tls(tls: Any, section: str, errors: list, requires: tuple = ()) -> None:
    """``<section>:tls``: enabled, three distinct absolute file paths, and the ``requires`` flags (need enabled)."""
    tls = tls if isinstance(tls, dict) else {}
    _check_bool(tls.get("enabled"), (section, "tls", "enabled"), errors)
    for flag in requires:
        _check_bool(tls.get(flag), (section, "tls", flag), errors)
        if tls.get(flag) is True and tls.get("enabled") is not True:
            errors.append(f"{_key(section, 'tls', flag)}: needs {section}:tls:enabled true")
    if tls.get("enabled") is not True:
        return
    paths: dict = {}
    for key in TLS_FILES:
        value = tls.get(key)
        if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
            errors.append(f"{_key(section, 'tls', key)}: must be the absolute path of a file (got {value!r})")
        elif value in paths:
            errors.append(f"{_key(section, 'tls', key)}: the same file as {section}:tls:{paths[value]}")
        else:
            paths[value] = key


def _check_bool(value: Any, path: tuple, errors: list) -> None:
    if not isinstance(value, bool):
        errors.append(f"{_key(*path)}: must be true or false (got {value!r})")


def _check_duration(value: Any, path: tuple, errors: list) -> None:
    if not _DURATION.fullmatch(str(value)):
        errors.append(f"{_key(*path)}: must be a duration such as 3s, 500ms or 30m (got {value!r})")


def _check_cidr(value: Any, path: tuple, errors: list) -> bool:
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        errors.append(f"{_key(*path)}: not a network in CIDR form such as 10.0.0.0/24 ({exc})")
        return False
    if "/" not in str(value):
        errors.append(f"{_key(*path)}: give the prefix length, e.g. {value}/32")
        return False
    return True


def _check_abs_path(value: Any, path: tuple, errors: list, what: str = "path") -> bool:
    if not isinstance(value, str) or not value.startswith("/") or (value.endswith("/") and value != "/") \
            or any(ch.isspace() for ch in value):
        errors.append(f"{_key(*path)}: must be an absolute {what} without spaces (got {value!r})")
        return False
    return True


def _version_tuple(text: Any) -> tuple[int, ...] | None:
    """(4, 1, 5) from '4.1.5', 'patroni 4.1.5' or a Debian version such as '3.0.2-1'; None if there is none."""
    if not isinstance(text, str):
        return None
    match = _VERSION_IN_TEXT.search(text.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _check_bind(value: Any, path: tuple, errors: list) -> None:
    if value == "*":
        return
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        errors.append(f"{_key(*path)}: must be an IP address or '*' (got {value!r})")


def _check_nodes(cfg: dict, errors: list) -> dict:
    nodes = cfg.get("nodes")
    by_role: dict = {role: [] for role in ROLES}
    if not isinstance(nodes, dict) or not nodes:
        errors.append(f"{_key('nodes')}: must map each minion id to its address and roles; none given")
        return by_role
    for node_id, node in nodes.items():
        if not isinstance(node_id, str) or not _MINION_ID.fullmatch(node_id):
            errors.append(f"{_key('nodes', node_id)}: not a valid minion id")
        if not isinstance(node, dict):
            errors.append(f"{_key('nodes', node_id)}: must be a map with address and roles")
            continue
        for key in node:
            if key not in NODE_KEYS:
                errors.append(f"{_key('nodes', node_id, key)}: unknown key (typo?); known keys here: address, roles")
        address = node.get("address")
        try:
            if address is None:
                raise ValueError
            parsed = ipaddress.ip_address(str(address))
            if parsed.is_unspecified or parsed.is_multicast:
                errors.append(f"{_key('nodes', node_id, 'address')}: must be the node's own unicast address (got {address})")
        except ValueError:
            errors.append(f"{_key('nodes', node_id, 'address')}: must be an IP address (got {address!r})")
        roles = node.get("roles")
        if not isinstance(roles, list) or not roles:
            errors.append(f"{_key('nodes', node_id, 'roles')}: must be a non-empty list of {', '.join(ROLES)}")
            continue
        for role in roles:
            if not isinstance(role, str) or role not in ROLES:
                errors.append(f"{_key('nodes', node_id, 'roles')}: unknown role {role!r}; roles are {', '.join(ROLES)}")
            else:
                by_role[role].append(node_id)
        names = [role for role in roles if isinstance(role, str)]
        if len(set(names)) != len(names):
            errors.append(f"{_key('nodes', node_id, 'roles')}: a role is listed twice")
    for role in ROLES:
        if not by_role[role]:
            errors.append(f"{_key('nodes')}: no node has the role {role!r}; the cluster needs one")
    if by_role["etcd"] and len(by_role["etcd"]) % 2 == 0:
        errors.append(
            f"{_key('nodes')}: {len(by_role['etcd'])} etcd members; use an odd number "
            "(an even one tolerates no more failures and risks a split vote)"
        )
    return by_role


def _check_collisions(cfg: dict, by_role: dict, errors: list) -> None:
    nodes = cfg.get("nodes") or {}
    seen: dict = {}

    def use(node_id: str, port: Any, what: str, bind: Any = None) -> None:
        # '*' binds every address of the node: count it on the node's address.
        address = str(bind if bind not in (None, "*") else (nodes.get(node_id) or {}).get("address"))
        try:
            address = ipaddress.ip_address(address).compressed
        except ValueError:
            pass
        if not _is_int(port):
            return
        if (address, port) in seen:
            errors.append(f"{_key('nodes', node_id)}: {what} on {address}:{port} collides with {seen[(address, port)]}")
            return
        seen[(address, port)] = f"{what} of {node_id}"

    for node_id in by_role["etcd"]:
        use(node_id, cfg["etcd"].get("client_port"), "etcd client port")
        use(node_id, cfg["etcd"].get("peer_port"), "etcd peer port")
    for node_id in by_role["postgresql"]:
        use(node_id, cfg["postgresql"].get("port"), "PostgreSQL")
        use(node_id, cfg["patroni"].get("restapi_port"), "Patroni REST API")
    haproxy = cfg.get("haproxy") or {}
    for node_id in by_role["haproxy"]:
        use(node_id, haproxy.get("port"), "HAProxy", haproxy.get("bind_address"))
        use(node_id, haproxy.get("stats_port"), "HAProxy stats page", haproxy.get("stats_bind_address"))
        for path in READ_PATHS:
            entry = haproxy.get(path) if isinstance(haproxy.get(path), dict) else {}
            if entry.get("enabled") is True:
                use(node_id, entry.get("port"), f"HAProxy's {path} port", haproxy.get("bind_address"))
        pooler = cfg.get("pgbouncer") if isinstance(cfg.get("pgbouncer"), dict) else {}
        if pooler.get("enabled") is True:
            use(node_id, pooler.get("port"), "PgBouncer", haproxy.get("bind_address"))


def _check_patroni(cfg: dict, errors: list) -> None:
    patroni = cfg.get("patroni") or {}
    ok = _check_int(patroni.get("ttl"), ("patroni", "ttl"), errors, 20)
    ok &= _check_int(patroni.get("loop_wait"), ("patroni", "loop_wait"), errors, 1)
    ok &= _check_int(patroni.get("retry_timeout"), ("patroni", "retry_timeout"), errors, 3)
    if ok and patroni["loop_wait"] + 2 * patroni["retry_timeout"] > patroni["ttl"]:
        errors.append(
            f"{_key('patroni', 'ttl')}: loop_wait + 2*retry_timeout must not exceed ttl "
            f"({patroni['loop_wait']} + 2*{patroni['retry_timeout']} > {patroni['ttl']})"
        )
    _check_int(patroni.get("maximum_lag_on_failover"), ("patroni", "maximum_lag_on_failover"), errors, 0)
    _check_port(patroni.get("restapi_port"), ("patroni", "restapi_port"), errors)
    _check_bool(patroni.get("restapi_tls"), ("patroni", "restapi_tls"), errors)
    if _check_int(patroni.get("restapi_queue_size"), ("patroni", "restapi_queue_size"), errors, 1) \
            and patroni["restapi_queue_size"] > 4096:
        errors.append(f"{_key('patroni', 'restapi_queue_size')}: must be at most 4096 (got {patroni['restapi_queue_size']})")
    pg_tls = ((cfg.get("postgresql") or {}).get("tls") or {}).get("enabled")
    if patroni.get("restapi_tls") is True and pg_tls is not True:
        errors.append(f"{_key('patroni', 'restapi_tls')}: serves the node's certificate of postgresql:tls, "
                      "which is not enabled")
    for flag in ("use_pg_rewind", "synchronous_mode", "synchronous_mode_strict", "failsafe_mode"):
        _check_bool(patroni.get(flag), ("patroni", flag), errors)
    if patroni.get("synchronous_mode_strict") is True and patroni.get("synchronous_mode") is not True:
        errors.append(f"{_key('patroni', 'synchronous_mode_strict')}: needs patroni:synchronous_mode: true")
    tags = patroni.get("tags")
    if not isinstance(tags, dict):
        errors.append(f"{_key('patroni', 'tags')}: must be a map")
    _check_bool(patroni.get("allow_unsafe_version"), ("patroni", "allow_unsafe_version"), errors)
    version = patroni.get("version")
    if not isinstance(version, str) or not _RELEASE.fullmatch(version):
        errors.append(
            f"{_key('patroni', 'version')}: must be a release X.Y.Z, quoted, such as '4.1.5' (got {version!r})"
        )
    elif _version_tuple(version) < SAFE_PATRONI and patroni.get("allow_unsafe_version") is not True:
        errors.append(
            f"{_key('patroni', 'version')}: {version} is older than 3.1: {UNSAFE_PATRONI_REASON}; "
            "use 3.1 or later (4.1.5 is the tested release; patroni:allow_unsafe_version: true only to "
            "measure the old behaviour, never in production)"
        )
    _check_watchdog(cfg, errors)


def _check_watchdog(cfg: dict, errors: list) -> None:
    patroni = cfg.get("patroni") or {}
    watchdog = patroni.get("watchdog") if isinstance(patroni.get("watchdog"), dict) else {}
    # YAML 1.1 (Salt's) reads an unquoted off as false.
    mode = "off" if watchdog.get("mode") is False else watchdog.get("mode")
    if mode not in WATCHDOG_MODES:
        errors.append(
            f"{_key('patroni', 'watchdog', 'mode')}: must be one of {', '.join(WATCHDOG_MODES)} (got {mode!r})"
        )
    _check_abs_path(watchdog.get("device"), ("patroni", "watchdog", "device"), errors, "device path")
    margin_ok = _check_int(watchdog.get("safety_margin"), ("patroni", "watchdog", "safety_margin"), errors, -1)
    manager = (cfg.get("lookup") or {}).get("service_manager")
    if mode == "required" and manager == "supervisord":
        errors.append(
            f"{_key('patroni', 'watchdog', 'mode')}: required needs a watchdog device, which the formula "
            "prepares on systemd hosts only; with lookup:service_manager: supervisord (containers, the lab) "
            "use off or automatic"
        )
    ttl, loop_wait = patroni.get("ttl"), patroni.get("loop_wait")
    if mode in ("automatic", "required") and margin_ok and _is_int(ttl) and _is_int(loop_wait):
        margin = watchdog["safety_margin"]
        timeout = ttl // 2 if margin == -1 else ttl - margin
        if timeout < loop_wait or timeout < 1:
            errors.append(
                f"{_key('patroni', 'watchdog', 'safety_margin')}: the watchdog's timeout "
                f"({'ttl/2' if margin == -1 else 'ttl - safety_margin'} = {timeout} s) must be at least "
                f"loop_wait ({loop_wait} s) and 1 s, or Patroni runs without the watchdog"
            )


def _check_patroni_lookup(cfg: dict, given: dict, errors: list) -> None:
    lookup = cfg.get("lookup") if isinstance(cfg.get("lookup"), dict) else {}
    paths = lookup.get("patroni") if isinstance(lookup.get("patroni"), dict) else {}
    install = paths.get("install")
    if install not in PATRONI_INSTALLS:
        errors.append(
            f"{_key('lookup', 'patroni', 'install')}: must be one of {', '.join(PATRONI_INSTALLS)} (got {install!r})"
        )
    if install == "pip":
        _check_abs_path(paths.get("python"), ("lookup", "patroni", "python"), errors, "path of a Python")
        if _check_abs_path(paths.get("venv_dir"), ("lookup", "patroni", "venv_dir"), errors, "directory") \
                and paths["venv_dir"] == "/":
            errors.append(f"{_key('lookup', 'patroni', 'venv_dir')}: must not be /")
        given_lookup = given.get("lookup") if isinstance(given, dict) and isinstance(given.get("lookup"), dict) else {}
        given_paths = given_lookup.get("patroni") if isinstance(given_lookup.get("patroni"), dict) else {}
        for key in ("binary", "patronictl"):
            if key in given_paths:
                errors.append(
                    f"{_key('lookup', 'patroni', key)}: derived from venv_dir with install: pip "
                    f"(<venv_dir>/bin/{'patroni' if key == 'binary' else 'patronictl'}); set it only with "
                    "install: package"
                )
        pip = paths.get("pip") if isinstance(paths.get("pip"), dict) else {}
        index_url, wheel_dir = pip.get("index_url"), pip.get("wheel_dir")
        if index_url is not None and (not isinstance(index_url, str) or not _URL.fullmatch(index_url)):
            errors.append(
                f"{_key('lookup', 'patroni', 'pip', 'index_url')}: must be null or an http(s):// or file:// URL "
                "of a package index"
            )
        if wheel_dir is not None:
            _check_abs_path(wheel_dir, ("lookup", "patroni", "pip", "wheel_dir"), errors, "directory")
            if index_url is not None:
                errors.append(
                    f"{_key('lookup', 'patroni', 'pip', 'wheel_dir')}: installs with --no-index: "
                    "set either wheel_dir or index_url, not both"
                )
    for key in ("pkgs", "venv_pkgs"):
        value = paths.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) and _PACKAGE_NAME.fullmatch(v) for v in value):
            errors.append(f"{_key('lookup', 'patroni', key)}: must be a list of package names (got {value!r})")
        elif key == "pkgs" and install == "package" and not value:
            errors.append(f"{_key('lookup', 'patroni', key)}: install: package needs at least Patroni's package")
    unit = paths.get("unit_file")
    if _check_abs_path(unit, ("lookup", "patroni", "unit_file"), errors, "file path"):
        service = paths.get("service")
        if isinstance(service, str) and os.path.basename(unit) != f"{service}.service":
            errors.append(
                f"{_key('lookup', 'patroni', 'unit_file')}: must be named after the service "
                f"({service}.service; got {os.path.basename(unit)})"
            )
    watchdog = paths.get("watchdog") if isinstance(paths.get("watchdog"), dict) else {}
    module = watchdog.get("kernel_module")
    if module is not None and (not isinstance(module, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", module)):
        errors.append(
            f"{_key('lookup', 'patroni', 'watchdog', 'kernel_module')}: must be null or a kernel module name "
            f"(got {module!r})"
        )
    for key in ("modules_load_file", "udev_rule_file"):
        _check_abs_path(watchdog.get(key), ("lookup", "patroni", "watchdog", key), errors, "file path")


def _check_postgresql(cfg: dict, errors: list) -> None:
    pg = cfg.get("postgresql") or {}
    _check_port(pg.get("port"), ("postgresql", "port"), errors)
    networks = pg.get("client_networks")
    if not isinstance(networks, list):
        errors.append(f"{_key('postgresql', 'client_networks')}: must be a list of networks")
    else:
        for index, network in enumerate(networks):
            _check_cidr(network, ("postgresql", "client_networks", index), errors)
    entries = pg.get("pg_hba")
    if not isinstance(entries, list):
        errors.append(f"{_key('postgresql', 'pg_hba')}: must be a list of entries")
        entries = []
    for index, entry in enumerate(entries):
        path = ("postgresql", "pg_hba", index)
        if not isinstance(entry, dict):
            errors.append(f"{_key(*path)}: must be a map with type, database, user, address, method")
            continue
        for key in entry:
            if key not in ("type", "database", "user", "address", "method"):
                errors.append(f"{_key(*path, key)}: unknown key; use type, database, user, address, method")
        kind = entry.get("type")
        if kind not in HBA_TYPES:
            errors.append(f"{_key(*path, 'type')}: must be one of {', '.join(HBA_TYPES)} (got {kind!r})")
        for field in ("database", "user"):
            value = entry.get(field)
            if not isinstance(value, str) or not value or any(ch.isspace() for ch in value):
                errors.append(f"{_key(*path, field)}: must be a non-empty word (got {value!r})")
        if kind == "local" and "address" in entry:
            errors.append(f"{_key(*path, 'address')}: not allowed for type local")
        if kind != "local":
            if "address" not in entry:
                errors.append(f"{_key(*path, 'address')}: required for type {kind!r}")
            else:
                _check_cidr(entry["address"], path + ("address",), errors)
        method = entry.get("method")
        if method not in HBA_METHODS:
            errors.append(
                f"{_key(*path, 'method')}: must be one of {', '.join(HBA_METHODS)} (got {method!r}; "
                "trust and password are refused)"
            )
        elif method == "peer" and kind != "local":
            errors.append(f"{_key(*path, 'method')}: peer works only with type local")
    params = pg.get("parameters")
    if not isinstance(params, dict):
        errors.append(f"{_key('postgresql', 'parameters')}: must be a map of PostgreSQL settings")
    elif params.get("password_encryption", "scram-sha-256") not in ("scram-sha-256", "md5"):
        errors.append(f"{_key('postgresql', 'parameters', 'password_encryption')}: must be scram-sha-256 or md5")


def _check_haproxy(cfg: dict, errors: list) -> None:
    haproxy = cfg.get("haproxy") or {}
    _check_port(haproxy.get("port"), ("haproxy", "port"), errors)
    _check_port(haproxy.get("stats_port"), ("haproxy", "stats_port"), errors)
    _check_bind(haproxy.get("bind_address"), ("haproxy", "bind_address"), errors)
    _check_bind(haproxy.get("stats_bind_address"), ("haproxy", "stats_bind_address"), errors)
    for key in ("maxconn", "server_maxconn"):
        _check_int(haproxy.get(key), ("haproxy", key), errors, 1)
    _check_int(haproxy.get("retries"), ("haproxy", "retries"), errors, 0)
    check = haproxy.get("check")
    if not isinstance(check, dict):
        errors.append(f"{_key('haproxy', 'check')}: must be a map with inter, fall, rise")
    else:
        _check_duration(check.get("inter"), ("haproxy", "check", "inter"), errors)
        for key in ("fastinter", "downinter"):
            if check.get(key) is not None:
                _check_duration(check.get(key), ("haproxy", "check", key), errors)
        _check_int(check.get("fall"), ("haproxy", "check", "fall"), errors, 1)
        _check_int(check.get("rise"), ("haproxy", "check", "rise"), errors, 1)
    timeout = haproxy.get("timeout")
    if isinstance(timeout, dict):
        for key, value in timeout.items():
            _check_duration(value, ("haproxy", "timeout", key), errors)
    for path in READ_PATHS:
        entry = haproxy.get(path) if isinstance(haproxy.get(path), dict) else {}
        _check_bool(entry.get("enabled"), ("haproxy", path, "enabled"), errors)
        _check_port(entry.get("port"), ("haproxy", path, "port"), errors)
    max_lag = (haproxy.get("replicas") or {}).get("max_lag")
    if max_lag is not None:
        _check_int(max_lag, ("haproxy", "replicas", "max_lag"), errors, 0)
    if haproxy.get("nbthread") is not None:
        _check_int(haproxy["nbthread"], ("haproxy", "nbthread"), errors, 1)


def _check_pgbouncer(cfg: dict, errors: list) -> None:
    pooler = cfg.get("pgbouncer") or {}
    _check_bool(pooler.get("enabled"), ("pgbouncer", "enabled"), errors)
    _check_port(pooler.get("port"), ("pgbouncer", "port"), errors)
    if pooler.get("pool_mode") not in POOL_MODES:
        errors.append(f"{_key('pgbouncer', 'pool_mode')}: must be one of {', '.join(POOL_MODES)} "
                      f"(got {pooler.get('pool_mode')!r})")
    for key in ("max_client_conn", "default_pool_size"):
        _check_int(pooler.get(key), ("pgbouncer", key), errors, 1)


def _check_misc(cfg: dict, by_role: dict, errors: list) -> None:
    cluster = cfg.get("cluster") or {}
    scope = cluster.get("scope")
    if not isinstance(scope, str) or not _SCOPE.fullmatch(scope or ""):
        errors.append(f"{_key('cluster', 'scope')}: must be a non-empty name of letters, digits, . _ - (got {scope!r})")
    namespace = cluster.get("namespace")
    if not isinstance(namespace, str) or not namespace.startswith("/") or not namespace.endswith("/"):
        errors.append(f"{_key('cluster', 'namespace')}: must start and end with / (got {namespace!r})")
    leader = cluster.get("bootstrap_leader")
    if leader is not None and leader not in by_role["postgresql"]:
        errors.append(
            f"{_key('cluster', 'bootstrap_leader')}: {leader!r} is not a postgresql node "
            f"(postgresql nodes: {', '.join(sorted(by_role['postgresql'])) or 'none'})"
        )
    etcd = cfg.get("etcd") or {}
    _check_port(etcd.get("client_port"), ("etcd", "client_port"), errors)
    _check_port(etcd.get("peer_port"), ("etcd", "peer_port"), errors)
    if etcd.get("initial_cluster_state") not in ("new", "existing"):
        errors.append(f"{_key('etcd', 'initial_cluster_state')}: must be new or existing")
    initial = etcd.get("initial_cluster")
    if initial is not None and not (isinstance(initial, str) and all(
            _MEMBER.fullmatch(item) for item in initial.split(","))):
        errors.append(f"{_key('etcd', 'initial_cluster')}: must be name=peer URL pairs separated by commas, "
                      f"e.g. etcd=https://10.131.0.5:2380 (got {initial!r})")
    if not isinstance(etcd.get("token"), str) or not etcd.get("token"):
        errors.append(f"{_key('etcd', 'token')}: must be a non-empty string")
    _check_bool(etcd.get("listen_localhost"), ("etcd", "listen_localhost"), errors)
    auth = etcd.get("auth") if isinstance(etcd.get("auth"), dict) else {}
    _check_bool(auth.get("enabled"), ("etcd", "auth", "enabled"), errors)
    _check_tls(etcd.get("tls"), "etcd", errors)
    _check_tls((cfg.get("postgresql") or {}).get("tls"), "postgresql", errors, ("require_clients", "require_replication"))
    users = cfg.get("users") or {}
    for key, value in users.items():
        if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
            errors.append(f"{_key('users', key)}: must be a user name of letters, digits and _ (got {value!r})")
    if users.get("etcd_patroni") == "root":
        errors.append(f"{_key('users', 'etcd_patroni')}: must not be root (etcd's administrator; Patroni gets a user of its own)")
    lookup = cfg.get("lookup") or {}
    if lookup.get("service_manager") not in SERVICE_MANAGERS:
        errors.append(
            f"{_key('lookup', 'service_manager')}: must be one of {', '.join(SERVICE_MANAGERS)} "
            f"(got {lookup.get('service_manager')!r})"
        )
    root = lookup.get("root")
    if not isinstance(root, str) or (root and not root.startswith("/")):
        errors.append(f"{_key('lookup', 'root')}: must be empty or an absolute path (got {root!r})")
    drill = cfg.get("drill") or {}
    _check_bool(drill.get("enabled"), ("drill", "enabled"), errors)
    modes = __utils__["pgha_faults.modes"]()
    if drill.get("mode") not in modes:
        errors.append(f"{_key('drill', 'mode')}: must be one of {', '.join(modes)} (got {drill.get('mode')!r})")
    _check_int(drill.get("timeout"), ("drill", "timeout"), errors, 10)
    for key in ("freeze_s", "outage_s"):
        if drill.get(key) is not None:
            _check_int(drill.get(key), ("drill", key), errors, 1)
    _check_bool((cfg.get("retire") or {}).get("purge_data"), ("retire", "purge_data"), errors)
    gates = cfg.get("gates") or {}
    _check_int(gates.get("timeout"), ("gates", "timeout"), errors, 10)
    _check_int(gates.get("max_lag_bytes"), ("gates", "max_lag_bytes"), errors, 0)
    database = (cfg.get("probe") or {}).get("database")
    if not isinstance(database, str) or not _IDENTIFIER.fullmatch(database) or database in ("postgres", "template0", "template1"):
        errors.append(f"{_key('probe', 'database')}: must be a database name of letters, digits and _ of the formula's own, "
                      f"not postgres or a template (got {database!r})")


def _check_secrets(cfg: dict, roles: list | None, errors: list) -> None:
    """The secrets of these roles (None: every role's), by the one rule of _utils/pgha_secrets.py."""
    etcd = cfg.get("etcd") if isinstance(cfg.get("etcd"), dict) else {}
    auth = (etcd.get("auth") if isinstance(etcd.get("auth"), dict) else {}).get("enabled") is True
    pooler = (cfg.get("pgbouncer") if isinstance(cfg.get("pgbouncer"), dict) else {}).get("enabled") is True
    if roles is None:
        keys = __utils__["pgha_secrets.everyone"](auth, pooler)
    else:
        keys = __utils__["pgha_secrets.needed"](roles, auth, pooler)
    errors.extend(__utils__["pgha_secrets.problems"](cfg.get("secrets"), keys))


def _with_maps(cfg: Any, known: Any, path: tuple) -> Any:
    if not isinstance(known, dict) or path in FREE_FORM:
        return cfg
    if not isinstance(cfg, dict):
        return copy.deepcopy(known)
    return {key: _with_maps(value, known.get(key), path + (key,)) for key, value in cfg.items()}


def _check(cfg: dict, given: dict, known: dict, roles: list | None = None) -> list[str]:
    """
    All problems of a configuration, as 'pgha:key:path: problem' lines.

    ``cfg`` is the merged configuration, ``given`` the pillar as written (for
    unknown keys), ``known`` the defaults' tree (the keys that exist) and
    ``roles`` those whose secrets must be there (None: every role's).
    """
    errors: list[str] = [f"{_key(key)}: {why}" for key, why in RETIRED_KEYS.items() if key in (given or {})]
    _unknown_keys({k: v for k, v in given.items() if k not in RETIRED_KEYS}, known, (), errors)
    for key, default in known.items():
        if isinstance(default, dict) and not isinstance(cfg.get(key), dict):
            errors.append(f"{_key(key)}: must be a map (got {cfg.get(key)!r})")
    # Keep checking with the defaults where a map was replaced by something else.
    cfg = _with_maps(cfg, known, ())
    by_role = _check_nodes(cfg, errors)
    _check_collisions(cfg, by_role, errors)
    _check_patroni(cfg, errors)
    _check_patroni_lookup(cfg, given, errors)
    _check_postgresql(cfg, errors)
    _check_haproxy(cfg, errors)
    _check_pgbouncer(cfg, errors)
    _check_misc(cfg, by_role, errors)
    _check_secrets(cfg, roles, errors)
    return errors


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------


def _rooted(lookup: dict, root: str) -> dict:
    out: dict = {}
    for key, value in lookup.items():
        if isinstance(value, dict):
            out[key] = _rooted(value, root)
        elif (
            isinstance(value, str)
            and value.startswith("/")
            and key not in NOT_ROOTED
            and key.endswith(ROOTED_SUFFIXES)
        ):
            out[key] = root + value
        else:
            out[key] = value
    return out




def _build(cfg: dict, minion_id: str) -> dict:
    """Derive the map of one minion from a merged configuration (assumed valid)."""
    data = copy.deepcopy(cfg)
    nodes = data["nodes"]
    by_role = {role: sorted(n for n, node in nodes.items() if role in node["roles"]) for role in ROLES}
    node = nodes.get(minion_id, {"address": None, "roles": []})
    root = data["lookup"]["root"].replace("{id}", minion_id)
    data["lookup"] = _rooted(data["lookup"], root)
    data["lookup"]["root"] = root
    data["id"] = minion_id
    data["node"] = dict(node, id=minion_id)
    data["roles"] = list(node["roles"])
    data["pg_nodes"] = by_role["postgresql"]
    data["etcd_nodes"] = by_role["etcd"]
    data["haproxy_nodes"] = by_role["haproxy"]
    data["cluster"]["bootstrap_leader"] = data["cluster"]["bootstrap_leader"] or by_role["postgresql"][0]
    etcd = data["etcd"]
    scheme = "https" if etcd["tls"]["enabled"] else "http"
    etcd["scheme"] = scheme
    for section in TLS_NEEDS:
        for key in TLS_FILES:
            data[section]["tls"][key] = root + data[section]["tls"][key]
    etcd["client_urls"] = {n: f"{scheme}://{_host(nodes[n]['address'])}:{etcd['client_port']}" for n in by_role["etcd"]}
    etcd["peer_urls"] = {n: f"{scheme}://{_host(nodes[n]['address'])}:{etcd['peer_port']}" for n in by_role["etcd"]}
    etcd["hosts"] = [f"{_host(nodes[n]['address'])}:{etcd['client_port']}" for n in by_role["etcd"]]
    etcd["initial_cluster"] = etcd.get("initial_cluster") or ",".join(f"{n}={url}" for n, url in etcd["peer_urls"].items())
    restapi = "https" if data["patroni"]["restapi_tls"] else "http"
    data["restapi_urls"] = {
        n: f"{restapi}://{_host(nodes[n]['address'])}:{data['patroni']['restapi_port']}" for n in by_role["postgresql"]
    }
    # the CA that verifies the REST API's certificates, on whichever host reads them (the master too)
    data["restapi_cafile"] = data["postgresql"]["tls"]["ca_file"] if restapi == "https" else None
    patroni_paths = data["lookup"]["patroni"]
    if patroni_paths["install"] == "pip":
        patroni_paths["binary"] = patroni_paths["venv_dir"] + "/bin/patroni"
        patroni_paths["patronictl"] = patroni_paths["venv_dir"] + "/bin/patronictl"
        patroni_paths["pip"]["requirement"] = f"patroni[{','.join(PATRONI_EXTRAS)}]=={data['patroni']['version']}"
    if data["patroni"]["watchdog"]["mode"] is False:
        data["patroni"]["watchdog"]["mode"] = "off"
    haproxy_node = by_role["haproxy"][0] if by_role["haproxy"] else None
    data["haproxy"]["write_address"] = nodes[haproxy_node]["address"] if haproxy_node else None
    data["haproxy"]["listeners"] = _listeners(data)
    return data


def _listeners(data: dict) -> list[dict]:
    """
    HAProxy's listeners, the leader's port first: name, port, Patroni's
    health check that puts a server in it, and how connections are balanced.
    """
    haproxy = data["haproxy"]
    listeners = [{"name": "postgres", "path": "leader", "port": haproxy["port"], "check": "/primary", "balance": None}]
    for path, check in READ_PATHS.items():
        entry = haproxy[path]
        if entry["enabled"]:
            if path == "replicas":
                lag = entry["max_lag"] if entry["max_lag"] is not None else data["patroni"]["maximum_lag_on_failover"]
                check = f"{check}?lag={lag}"
            listeners.append({"name": f"postgres_{path}", "path": path, "port": entry["port"], "check": check,
                              "balance": "roundrobin"})
    return listeners


def _host(address: str) -> str:
    return f"[{address}]" if ":" in str(address) else str(address)


def _mask(data: Any) -> Any:
    """A copy of data with every secret replaced by a mask."""
    if isinstance(data, dict):
        return {
            key: {name: MASK for name in value} if key == "secrets" and isinstance(value, dict) else _mask(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_mask(item) for item in data]
    return data


def _pillar_cfg(pillar: dict | None) -> dict:
    cfg = __pillar__.get("pgha") if hasattr(__pillar__, "get") else None
    if cfg is None:
        cfg = {}
    if pillar:
        override = pillar.get("pgha", pillar) if isinstance(pillar, dict) else {}
        cfg = _merge(dict(cfg), override)
    return cfg


def validate(pillar: dict | None = None, saltenv: str = "base") -> dict:
    """
    Check the ``pgha`` pillar this minion sees, optionally merged with a
    pillar override, and list every problem found. Of the secrets, those of
    this minion's roles only: it is given no other (``salt-run
    pgha.validate`` checks them all, on the master).

    Returns ``{"valid": bool, "errors": [...]}``; the exit code is non-zero
    when the pillar is not valid.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_config.validate
        salt postgres01 pgha_config.validate pillar='{"pgha": {"patroni": {"ttl": 10}}}'
    """
    given = _pillar_cfg(pillar)
    if not isinstance(given, dict):
        errors = ["pgha: must be a map"]
    else:
        known = defaults(saltenv)
        errors = _check(_merge(known, given), given, known, _own_roles(given))
    if errors:
        __context__["retcode"] = 1
    return {"valid": not errors, "errors": errors}


def _own_roles(given: dict) -> list:
    """This minion's roles in pgha:nodes: a minion is given, and checks, the secrets of its roles only."""
    nodes = given.get("nodes") if isinstance(given.get("nodes"), dict) else {}
    node = nodes.get(__grains__.get("id") or __opts__.get("id"))
    roles = node.get("roles") if isinstance(node, dict) else None
    return [role for role in roles if isinstance(role, str)] if isinstance(roles, list) else []


def mapdata(show_secrets: bool = False, saltenv: str = "base", pillar: dict | None = None) -> dict:
    """
    The merged, validated parameters of this minion: its roles, its paths
    (under ``lookup:root``), every node, the etcd endpoints and the Patroni
    REST API URLs. Secrets are masked unless ``show_secrets=True`` (the state
    files ask for them; nothing else should).

    Raises an error naming every wrong pillar key when the pillar is invalid.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_config.mapdata
    """
    # Computed once per run (a highstate renders a dozen templates that each ask):
    # __context__ lives as long as the job.
    key = f"pgha_config.mapdata.{saltenv}.{json.dumps(pillar, sort_keys=True, default=str)}"
    if key not in __context__:
        __context__[key] = _model(saltenv, pillar)
    data = copy.deepcopy(__context__[key])
    return data if show_secrets else _mask(data)


def _model(saltenv: str, pillar: dict | None) -> dict:
    given = _pillar_cfg(pillar)
    if not isinstance(given, dict):
        raise CommandExecutionError("pgha: the pillar key pgha must be a map")
    known = defaults(saltenv)
    cfg = _merge(known, given)
    errors = _check(cfg, given, known, _own_roles(given))
    if errors:
        raise CommandExecutionError("pgha: the pillar is invalid, nothing was changed:\n  " + "\n  ".join(errors))
    return _build(cfg, __grains__.get("id") or __opts__.get("id"))


def _run_version(binary: str) -> str | None:
    """``<binary> --version`` ('patroni 4.1.5') as '4.1.5', or None when it does not tell."""
    ret = __salt__["cmd.run_all"]([binary, "--version"], python_shell=False, ignore_retcode=True, timeout=30)
    version = _version_tuple(ret.get("stdout", "")) if ret.get("retcode") == 0 else None
    return ".".join(map(str, version)) if version else None


def _patroni_version(data: dict) -> tuple[str | None, str | None]:
    """
    The Patroni this host has, and where that was read: the configured
    binary's ``--version`` when it exists; with ``install: package`` and no
    binary yet, the version of the package (the first of
    ``lookup:patroni:pkgs``) that is installed, or else the candidate that
    would be. (None, None) when there is none yet.
    """
    paths = data["lookup"]["patroni"]
    if os.path.exists(paths["binary"]):
        version = _run_version(paths["binary"])
        if version:
            return version, paths["binary"]
    if paths["install"] == "package" and paths["pkgs"]:
        package = paths["pkgs"][0]
        for source, function, kwargs in (
            ("installed", "pkg.version", {}),
            ("candidate", "pkg.latest_version", {"refresh": False}),
        ):
            found = _version_tuple(__salt__[function](package, **kwargs) or "")
            if found:
                return ".".join(map(str, found)), f"package {package}, {source}"
    return None, None


def _running_patroni_version(data: dict, timeout: float = 2.0) -> str | None:
    """The version the Patroni running on this node reports (REST API ``GET /patroni``), None if none answers."""
    url = data["restapi_urls"][data["id"]] + "/patroni"
    try:
        status, answer = __utils__["pgha_cluster.request"](url, timeout=timeout, cafile=data.get("restapi_cafile"))
    except CommandExecutionError:
        return None
    patroni = answer.get("patroni") if status == 200 and isinstance(answer, dict) else None
    version = patroni.get("version") if isinstance(patroni, dict) else None
    return version if _version_tuple(version or "") else None


def _patroni_errors(data: dict, installed: tuple, running: str | None) -> list[str]:
    """
    Why this host's Patroni must not run. ``installed`` is (version, where
    it was read) from ``patroni_version``, ``running`` the version the
    running Patroni reports. With ``install: package``, an installed Patroni
    older than 3.1 (unless ``patroni:allow_unsafe_version``). With ``install:
    pip``, which installs ``patroni:version`` (validated), a jump from an
    installed or running Patroni before 3.1 straight to 4.x, which a running
    cluster does not take reliably.
    """
    version, source = installed
    target = data["patroni"]["version"]
    if data["lookup"]["patroni"]["install"] == "pip":
        if _version_tuple(target) < (4,):
            return []
        before = [(found, where) for found, where in ((version, source), (running, "running now"))
                  if found and _version_tuple(found) < SAFE_PATRONI]
        if not before:
            return []
        found, where = before[0]
        message = (
            f"{_key('patroni', 'version')}: {target}, but {data['id']} has Patroni {found} ({where}), older "
            "than 3.1: a running cluster moves to 4.x reliably only from 3.1 or later; set patroni:version to "
            "a 3.x release of 3.1 or later first (e.g. 3.3.11), restart Patroni on every node "
            f"(salt-run pgha.restart what=patroni), then {target}"
        )
        return [message]
    if version is None or _version_tuple(version) >= SAFE_PATRONI or data["patroni"]["allow_unsafe_version"]:
        return []
    message = (
        f"{_key('lookup', 'patroni', 'install')}: package: Patroni {version} on {data['id']} ({source}) is older "
        f"than 3.1: {UNSAFE_PATRONI_REASON}; use install: pip with patroni:version "
        "(docs/how-to/upgrade-patroni.md) or a newer package (patroni:allow_unsafe_version: true only to measure "
        "the old behaviour)"
    )
    return [message]


def check_host(saltenv: str = "base", patroni: bool = True) -> dict:
    """
    What this host must have before the formula's states run, beyond the
    pillar: with ``pgha:etcd:tls`` on, the CA on etcd and PostgreSQL nodes and
    the member certificate and key on etcd nodes; with ``pgha:postgresql:tls``
    on, the CA, certificate and key on PostgreSQL nodes and the CA on the
    HAProxy node when PgBouncer runs there or HAProxy checks Patroni's REST
    API over https (``patroni:restapi_tls``) (the operator's PKI places them;
    pgha never creates them); on PostgreSQL nodes, a Patroni of 3.1 or
    later (unless ``patroni:allow_unsafe_version``): the installed one, or
    with ``lookup:patroni:install: package`` the package's candidate; with
    ``install: pip`` the states install ``patroni:version`` (validated), and
    only a jump from before 3.1 (installed or running) straight to 4.x is
    refused. Returns ``{"ready": bool, "errors": [...], "patroni_version":
    "4.1.5" or None, "patroni_running": "4.1.5" or None}`` (the installed
    version, None when not installed yet or not a PostgreSQL node; the
    version the running Patroni reports, None when none answers),
    each error naming the pillar key, the path and this minion; non-zero
    exit when not ready. The orchestration runs it on every minion before
    any state (stage ``pgha-orch-hosts-ready``). ``patroni=False`` checks
    the TLS files only.

    CLI Example:

    .. code-block:: bash

        salt '*' pgha_config.check_host
    """
    data = mapdata(saltenv=saltenv)
    errors = []
    for section, needs in TLS_NEEDS.items():
        tls = data[section]["tls"]
        if not tls["enabled"]:
            continue
        mine = set(data["roles"])
        if section == "postgresql" and not (data["pgbouncer"]["enabled"] or data["patroni"]["restapi_tls"]):
            mine.discard("haproxy")  # HAProxy passes PostgreSQL's TLS through; its checks are plain http
        errors += [
            f"{_key(section, 'tls', key)}: {tls[key]} is not a file on {data['id']}"
            for key, roles in needs.items()
            if roles & mine and not os.path.isfile(tls[key])
        ]
    version = running = None
    if patroni and "postgresql" in data["roles"]:
        installed = _patroni_version(data)
        version, running = installed[0], _running_patroni_version(data)
        errors += _patroni_errors(data, installed, running)
    if errors:
        __context__["retcode"] = 1
    return {"ready": not errors, "errors": errors, "patroni_version": version, "patroni_running": running}
