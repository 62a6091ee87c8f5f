"""
What the ``pgha`` pillar may hold: a table of key paths and the check each
value must pass (``SCHEMA``), then the named rules between keys
(``RULES``), each a small function. ``problems`` runs both, plus the
unknown-key check against the defaults' tree, and returns every problem as
one line ``pgha:<key path>: <problem>`` naming the full key path.

Plain Python on the standard library: the model (``pgha_model``) runs it
wherever the model is built (minions, master, lab, tests).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable
from typing import Any

SERVICE_MANAGERS = ("systemd", "supervisord")
PATRONI_INSTALLS = ("pip", "package")
WATCHDOG_MODES = ("off", "automatic", "required")
POOL_MODES = ("session", "transaction", "statement")
CIPHER_TYPES = ("aes-256-cbc", "none")
COMPRESS_TYPES = ("lz4", "zst", "gz", "bz2", "none")
# Keys that existed once: what became of them.
RETIRED_KEYS = {
    "lab": "removed: demo passwords are refused everywhere (the lab generates its own passwords); delete this key",
}
# Maps whose keys the operator chooses.
FREE_FORM = {("nodes",), ("postgresql", "parameters"), ("patroni", "tags"), ("monitor", "alertmanager", "route")}

_DURATION = re.compile(r"\d+(us|ms|s|m|h|d)?")
_MINION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCOPE = re.compile(r"[A-Za-z0-9_.-]+")
_RELEASE = re.compile(r"\d+\.\d+\.\d+")
_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]*")
_URL = re.compile(r"(https?|file)://\S+")
_MEMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*=https?://[^,\s/]+")
_KERNEL_MODULE = re.compile(r"[A-Za-z0-9_-]+")
_PROM_DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")

Check = Callable[[Any], "str | None"]


def key(*parts: Any) -> str:
    """The full key path of a pillar key, as errors name it."""
    return ":".join(["pgha", *[str(part) for part in parts]])


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------
# checks of one value: the problem, or None
# ---------------------------------------------------------------------------


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false (got {value!r})"


def integer(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if not is_int(value):
            return f"must be an integer (got {value!r})"
        if minimum is not None and value < minimum:
            return f"must be at least {minimum} (got {value})"
        if maximum is not None and value > maximum:
            return f"must be at most {maximum} (got {value})"
        return None

    return check


def port(value: Any) -> str | None:
    return None if is_int(value) and 1 <= value <= 65535 else f"must be a port number 1-65535 (got {value!r})"


def duration(value: Any) -> str | None:
    return None if _DURATION.fullmatch(str(value)) else f"must be a duration such as 3s, 500ms or 30m (got {value!r})"


def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def choice(*options: str, words: str | None = None) -> Check:
    def check(value: Any) -> str | None:
        if value in options:
            return None
        return words or f"must be one of {', '.join(options)} (got {value!r})"

    return check


def pattern(regex: re.Pattern, what: str) -> Check:
    return lambda value: None if isinstance(value, str) and regex.fullmatch(value) else f"{what} (got {value!r})"


def bind(value: Any) -> str | None:
    if value == "*":
        return None
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return f"must be an IP address or '*' (got {value!r})"
    return None


def abs_path(what: str = "path") -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not value.startswith("/") or (value.endswith("/") and value != "/") \
                or any(ch.isspace() for ch in value):
            return f"must be an absolute {what} without spaces (got {value!r})"
        return None

    return check


def cidr(value: Any) -> str | None:
    try:
        ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        return f"not a network in CIDR form such as 10.0.0.0/24 ({exc})"
    return None if "/" in str(value) else f"give the prefix length, e.g. {value}/32"


def mapping(what: str) -> Check:
    return lambda value: None if isinstance(value, dict) else f"must be a map{what} (got {value!r})"


def root(value: Any) -> str | None:
    if isinstance(value, str) and (not value or value.startswith("/")):
        return None
    return f"must be empty or an absolute path (got {value!r})"


def release(value: Any) -> str | None:
    if isinstance(value, str) and _RELEASE.fullmatch(value):
        return None
    return f"must be a release X.Y.Z, quoted, such as '4.1.5' (got {value!r})"


def packages(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) and _PACKAGE_NAME.fullmatch(v) for v in value):
        return None
    return f"must be a list of package names (got {value!r})"


def index_url(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and _URL.fullmatch(value)):
        return None
    return "must be null or an http(s):// or file:// URL of a package index"


def initial_cluster(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and all(_MEMBER.fullmatch(item) for item in value.split(","))):
        return None
    return f"must be name=peer URL pairs separated by commas, e.g. etcd=https://10.131.0.5:2380 (got {value!r})"


def user_name(value: Any) -> str | None:
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value):
        return None
    return f"must be a user name of letters, digits and _ (got {value!r})"


def probe_database(value: Any) -> str | None:
    if isinstance(value, str) and _IDENTIFIER.fullmatch(value) and value not in ("postgres", "template0", "template1"):
        return None
    return ("must be a database name of letters, digits and _ of the formula's own, not postgres or a template "
            f"(got {value!r})")


def synchronous_mode(value: Any) -> str | None:
    if isinstance(value, bool) or value == "quorum":
        return None
    return f"must be true, false or quorum (got {value!r})"


def watchdog_mode(value: Any) -> str | None:
    # YAML 1.1 (Salt's) reads an unquoted off as false.
    mode = "off" if value is False else value
    return None if mode in WATCHDOG_MODES else f"must be one of {', '.join(WATCHDOG_MODES)} (got {mode!r})"


# The table: key path -> check. '*' stands for every key of a map, '[]' for every item of a list.
SCHEMA: dict[str, Check] = {
    "lookup:root": root,
    "lookup:service_manager": choice(*SERVICE_MANAGERS),
    "lookup:patroni:install": choice(*PATRONI_INSTALLS),
    "lookup:patroni:pkgs": packages,
    "lookup:patroni:venv_pkgs": packages,
    "lookup:patroni:unit_file": abs_path("file path"),
    "lookup:patroni:pip:index_url": index_url,
    "lookup:patroni:pip:wheel_dir": optional(abs_path("directory")),
    "lookup:patroni:watchdog:kernel_module": optional(pattern(_KERNEL_MODULE, "must be null or a kernel module name")),
    "lookup:patroni:watchdog:modules_load_file": abs_path("file path"),
    "lookup:patroni:watchdog:udev_rule_file": abs_path("file path"),
    "cluster:scope": pattern(_SCOPE, "must be a non-empty name of letters, digits, . _ -"),
    "cluster:namespace": lambda v: None if isinstance(v, str) and v.startswith("/") and v.endswith("/")
    else f"must start and end with / (got {v!r})",
    "cluster:bootstrap_leader": optional(pattern(_MINION_ID, "must be a minion id")),
    "etcd:client_port": port,
    "etcd:peer_port": port,
    "etcd:initial_cluster_state": choice("new", "existing", words="must be new or existing"),
    "etcd:initial_cluster": initial_cluster,
    "etcd:token": lambda v: None if isinstance(v, str) and v else "must be a non-empty string",
    "etcd:listen_localhost": boolean,
    "etcd:auth:enabled": boolean,
    "etcd:tls:enabled": boolean,
    "postgresql:port": port,
    "postgresql:client_networks": lambda v: None if isinstance(v, list) else "must be a list of networks",
    "postgresql:client_networks[]": cidr,
    "postgresql:pg_hba": lambda v: None if isinstance(v, list) else "must be a list of entries",
    "postgresql:pg_hba[]": mapping(" with type, database, user, address, method"),
    "postgresql:parameters": mapping(" of PostgreSQL settings"),
    "postgresql:parameters:password_encryption": optional(choice(
        "scram-sha-256", "md5", words="must be scram-sha-256 or md5")),
    "postgresql:tls:enabled": boolean,
    "postgresql:tls:require_clients": boolean,
    "postgresql:tls:require_replication": boolean,
    "patroni:version": release,
    "patroni:allow_unsafe_version": boolean,
    "patroni:restapi_port": port,
    "patroni:restapi_tls": boolean,
    "patroni:restapi_queue_size": integer(1, 4096),
    "patroni:ttl": integer(20),
    "patroni:loop_wait": integer(1),
    "patroni:retry_timeout": integer(3),
    "patroni:maximum_lag_on_failover": integer(0),
    "patroni:use_pg_rewind": boolean,
    "patroni:synchronous_mode": synchronous_mode,
    "patroni:synchronous_node_count": integer(1),
    "patroni:synchronous_mode_strict": boolean,
    "patroni:failsafe_mode": boolean,
    "patroni:watchdog:mode": watchdog_mode,
    "patroni:watchdog:device": abs_path("device path"),
    "patroni:watchdog:safety_margin": integer(-1),
    "patroni:tags": mapping(""),
    "haproxy:bind_address": bind,
    "haproxy:port": port,
    "haproxy:stats_bind_address": bind,
    "haproxy:stats_port": port,
    "haproxy:maxconn": integer(1),
    "haproxy:server_maxconn": integer(1),
    "haproxy:nbthread": optional(integer(1)),
    "haproxy:retries": integer(0),
    "haproxy:timeout:*": duration,
    "haproxy:check:inter": duration,
    "haproxy:check:fall": integer(1),
    "haproxy:check:rise": integer(1),
    "haproxy:check:fastinter": optional(duration),
    "haproxy:check:downinter": optional(duration),
    "haproxy:replicas:enabled": boolean,
    "haproxy:replicas:port": port,
    "haproxy:replicas:max_lag": optional(integer(0)),
    "haproxy:sync:enabled": boolean,
    "haproxy:sync:port": port,
    "haproxy:async:enabled": boolean,
    "haproxy:async:port": port,
    "pgbouncer:enabled": boolean,
    "pgbouncer:port": port,
    "pgbouncer:pool_mode": choice(*POOL_MODES),
    "pgbouncer:max_client_conn": integer(1),
    "pgbouncer:default_pool_size": integer(1),
    "pgbouncer:server_login_retry": integer(1, 3600),
    "users:*": user_name,
    "probe:database": probe_database,
    "drill:enabled": boolean,
    "drill:timeout": integer(10),
    "drill:freeze_s": optional(integer(1)),
    "drill:outage_s": optional(integer(1)),
    "drill:partition_s": optional(integer(1)),
    "lock:ttl": integer(5, 600),
    "lock:wait": integer(0, 3600),
    "gates:timeout": integer(10),
    "gates:max_lag_bytes": integer(0),
    "backup:stanza": optional(pattern(_SCOPE, "must be null or a name of letters, digits, . _ -")),
    "backup:port": port,
    "backup:repo_path": abs_path("directory"),
    "backup:cipher_type": choice(*CIPHER_TYPES),
    "backup:retention:full": integer(1, 1000),
    "backup:retention:diff": optional(integer(1, 1000)),
    "backup:archive_timeout": integer(10, 86400),
    "backup:archive_get_timeout": integer(1, 60),
    "backup:compress_type": choice(*COMPRESS_TYPES),
    "backup:process_max": integer(1, 64),
    "backup:from_standby": boolean,
    "backup:max_age_hours": optional(integer(1)),
    "lookup:pgbackrest:pkgs": packages,
    "lookup:pgbackrest:repo_user": user_name,
    "retire:purge_data": boolean,
    "clean:purge_data": boolean,
    "monitor:exporters": optional(boolean),
    "monitor:tls:enabled": boolean,
    "monitor:ports:*": port,
    "monitor:scrape_interval": pattern(_PROM_DURATION, "must be a Prometheus duration such as 15s or 1m"),
    "monitor:evaluation_interval": pattern(_PROM_DURATION, "must be a Prometheus duration such as 15s or 1m"),
    "monitor:retention": pattern(_PROM_DURATION, "must be a Prometheus duration such as 15d"),
    "monitor:rules:pending": pattern(_PROM_DURATION, "must be a Prometheus duration such as 0s or 1m"),
    "monitor:rules:leader_change_window": pattern(_PROM_DURATION, "must be a Prometheus duration such as 10m"),
    "monitor:rules:max_lag_bytes": integer(0),
    "monitor:rules:max_lag_s": integer(1),
    "monitor:rules:pooler_waiting_clients": integer(0),
    "drill:alert_timeout": integer(10),
    **{f"lookup:{name}:pkgs": packages for name in ("prometheus", "alertmanager", "node_exporter", "postgres_exporter",
                                                     "pgbouncer_exporter")},
}


def _values(cfg: Any, parts: list[str], path: tuple) -> list[tuple[tuple, Any]]:
    """The (path, value) pairs a table key names in ``cfg`` ('*': each key of a map, '[]': each list item)."""
    if not parts:
        return [(path, cfg)]
    head, rest = parts[0], parts[1:]
    if head == "*":
        return [pair for name, value in (cfg.items() if isinstance(cfg, dict) else [])
                for pair in _values(value, rest, path + (name,))]
    items = head.endswith("[]")
    name = head[:-2] if items else head
    if not isinstance(cfg, dict) or (name not in cfg and items):
        return [] if items else [(path + (name,), None)] if not rest else []
    value = cfg.get(name)
    if items:
        return [pair for index, item in enumerate(value if isinstance(value, list) else [])
                for pair in _values(item, rest, path + (name, index))]
    return _values(value, rest, path + (name,))


def table_problems(cfg: dict) -> list[str]:
    """Every value of the table's keys checked (a key absent from ``cfg`` is checked as null)."""
    found = []
    for path_text, check in SCHEMA.items():
        for path, value in _values(cfg, path_text.split(":"), ()):
            problem = check(value)
            if problem:
                found.append(f"{key(*path)}: {problem}")
    return found


def unknown_keys(given: Any, known: Any, path: tuple = ()) -> list[str]:
    """Keys of the pillar as written that the defaults do not have (a typo must not pass silently)."""
    if not isinstance(given, dict) or not isinstance(known, dict) or path in FREE_FORM:
        return []
    found = []
    for name, value in given.items():
        if name not in known:
            found.append(f"{key(*path, name)}: unknown key (typo?); known keys here: "
                         f"{', '.join(sorted(map(str, known)))}")
        elif isinstance(known[name], dict) and not isinstance(value, dict) and path:
            found.append(f"{key(*path, name)}: must be a map (got {value!r})")
        else:
            found += unknown_keys(value, known[name], path + (name,))
    return found


def with_maps(cfg: Any, known: Any, path: tuple = ()) -> Any:
    """``cfg`` with the defaults' maps where a map was replaced by something else (checking goes on)."""
    if not isinstance(known, dict) or path in FREE_FORM:
        return cfg
    if not isinstance(cfg, dict):
        return copy.deepcopy(known)
    return {name: with_maps(value, known.get(name), path + (name,)) for name, value in cfg.items()}


def problems(cfg: dict, written: dict, known: dict, rules: tuple = (), **context: Any) -> list[str]:
    """
    All problems of a configuration, as 'pgha:key:path: problem' lines:
    retired and unknown keys of ``written`` (the pillar as written) against
    ``known`` (the defaults' tree), sections that must be maps, the table,
    then each rule of ``rules`` (``pgha_rules.RULES``) given the merged
    ``cfg`` and ``context`` (what the rules need from elsewhere: the drill's
    modes, the secrets' policy and this minion's roles).
    """
    found = [f"{key(name)}: {why}" for name, why in RETIRED_KEYS.items() if name in (written or {})]
    found += unknown_keys({k: v for k, v in written.items() if k not in RETIRED_KEYS}, known)
    found += [f"{key(name)}: must be a map (got {cfg.get(name)!r})" for name, default in known.items()
              if isinstance(default, dict) and not isinstance(cfg.get(name), dict)]
    cfg = with_maps(cfg, known)
    found += table_problems(cfg)
    for rule in rules:
        for problem in rule(cfg, **context):
            if problem not in found:
                found.append(problem)
    return found
