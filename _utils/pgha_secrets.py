"""
Which of the formula's secrets each role uses, and what a usable one looks
like: the one rule the minions (each checks the secrets of its own roles,
``pgha_config.validate``), the master (it checks every secret,
``salt-run pgha.validate``) and the pillar's targeting
(``pillar/pgha/secrets/<role>.sls``, kept equal by a test) follow. Plain
Python; reached as ``__utils__["pgha_secrets.<function>"]``.
"""

from __future__ import annotations

from typing import Any

# Role -> the secrets its states and functions use.
ROLE_SECRETS = {
    # Patroni's config.yml (REST API, replication, superuser, etcd login), the
    # post-bootstrap script (admin), the probe role's state (superuser, probe).
    "postgresql": ("superuser_password", "replication_password", "admin_password", "restapi_password",
                   "probe_password", "etcd_patroni_password", "pooler_password", "monitor_password"),
    # etcd's access control (root) and the users it creates: Patroni's and the lock's.
    "etcd": ("etcd_root_password", "etcd_patroni_password", "etcd_lock_password"),
    # haproxy.cfg's stats page (its checks of Patroni's REST API need no
    # password), PgBouncer's login for looking clients up.
    "haproxy": ("haproxy_stats_password", "pooler_password", "monitor_password"),
    # pgBackRest encrypts what it writes to the repository (archive-push on
    # the PostgreSQL nodes) and reads it back (the backup node, restores).
    "backup": ("backup_cipher_password",),
    # Prometheus reads no password (Patroni's and etcd's metrics need none).
    "monitor": (),
}
# The PostgreSQL nodes use these too when the cluster has a backup node.
POSTGRESQL_WITH_BACKUP = ("backup_cipher_password",)
# Needed only with pgha:etcd:auth:enabled, and only with pgha:pgbouncer:enabled.
ETCD_AUTH_SECRETS = ("etcd_root_password", "etcd_patroni_password", "etcd_lock_password")
POOLER_SECRETS = ("pooler_password",)
BACKUP_SECRETS = ("backup_cipher_password",)
# The exporters' PostgreSQL role (postgres_exporter; PgBouncer's stats user): only with monitoring on.
MONITOR_SECRETS = ("monitor_password",)
# Passwords printed in the seed and other well-known demo values.
DEMO_PASSWORDS = frozenset(
    {"admin", "secretpassword", "rep-pass", "postgres", "password", "replicator", "patroni", "changeme"}
)
# Characters that HAProxy's `stats auth` line and pgpass cannot carry as is.
UNSAFE_STATS_CHARS = set(" \t#'\"\\")


def needed(roles: list | tuple, etcd_auth: bool, pooler: bool = False, backup: bool = False,
           monitor: bool = False) -> list[str]:
    """
    The secrets of these roles, in a stable order: those of etcd's access
    control only with it on, the pooler's only with PgBouncer enabled, the
    repository's only when the cluster has a backup node (the PostgreSQL
    nodes then use it too), the exporters' only with monitoring on (on the
    HAProxy node only with the pooler: its exporter's).
    """
    keys: list[str] = []
    for role, secrets in ROLE_SECRETS.items():
        if role in roles:
            keys += [key for key in secrets if key not in keys]
    if "postgresql" in roles and backup:
        keys += [key for key in POSTGRESQL_WITH_BACKUP if key not in keys]
    if monitor and not pooler and "postgresql" not in roles:
        keys = [key for key in keys if key not in MONITOR_SECRETS]
    return [key for key in keys if (etcd_auth or key not in ETCD_AUTH_SECRETS) and (pooler or key not in POOLER_SECRETS)
            and (backup or key not in BACKUP_SECRETS) and (monitor or key not in MONITOR_SECRETS)]


def everyone(etcd_auth: bool, pooler: bool = False, backup: bool = False, monitor: bool = False) -> list[str]:
    """Every secret a cluster needs."""
    return needed(tuple(ROLE_SECRETS), etcd_auth, pooler, backup, monitor)


def problems(secrets: Any, keys: list[str]) -> list[str]:
    """What is wrong with each of ``keys`` in ``secrets``, as 'pgha:secrets:<key>: problem' lines."""
    secrets = secrets if isinstance(secrets, dict) else {}
    found = []
    for key in keys:
        value = secrets.get(key)
        where = f"pgha:secrets:{key}"
        if not isinstance(value, str) or not value:
            found.append(f"{where}: required, must be a non-empty string")
        elif any(ch in value for ch in "\n\r"):
            found.append(f"{where}: must be one line")
        elif key == "haproxy_stats_password" and UNSAFE_STATS_CHARS & set(value):
            found.append(f"{where}: must not contain spaces, tabs, #, quotes or backslashes (HAProxy's stats auth line)")
        elif value.lower() in DEMO_PASSWORDS:
            found.append(f"{where}: a well-known demo password; choose another")
    return found


def cluster_problems(cfg: Any, change: Any = None) -> list[str]:
    """
    Every secret of a cluster checked in a ``pgha`` pillar (the master's,
    which is given them all), merged with ``change`` (``{"pgha": ...}`` or
    its inside); etcd's access control counts as on unless the pillar says
    off (its default).
    """
    cfg = cfg if isinstance(cfg, dict) else {}
    change = change.get("pgha", change) if isinstance(change, dict) else {}
    secrets = dict(cfg.get("secrets") or {}, **(change.get("secrets") or {}))
    etcd = change.get("etcd") or cfg.get("etcd") or {}
    auth = (etcd.get("auth") or {}).get("enabled", True) is True if isinstance(etcd, dict) else True
    pooler = change.get("pgbouncer") or cfg.get("pgbouncer") or {}
    nodes = change.get("nodes") or cfg.get("nodes") or {}
    backup = any("backup" in (node.get("roles") or []) for node in nodes.values() if isinstance(node, dict)) \
        if isinstance(nodes, dict) else False
    exporters = (change.get("monitor") or cfg.get("monitor") or {}).get("exporters")
    monitor = any("monitor" in (node.get("roles") or []) for node in nodes.values() if isinstance(node, dict)) \
        if isinstance(nodes, dict) and exporters is None else exporters is True
    return problems(secrets, everyone(auth, isinstance(pooler, dict) and pooler.get("enabled") is True, backup,
                                      monitor))


def minion_errors(ret: dict, tgt: Any, tgt_type: str) -> list[str]:
    """The errors of every minion's ``pgha_config.validate`` answer (full_return), and of each that did not answer."""
    expected = set(tgt) if tgt_type == "list" else set(ret)
    errors = [f"no minion matching {tgt!r} answered"] if not ret else []
    errors += [f"{minion}: did not answer" for minion in sorted(expected - set(ret))]
    for minion, answer in sorted(ret.items()):
        value = answer.get("ret") if isinstance(answer, dict) else answer
        found = value.get("errors", []) if isinstance(value, dict) else [f"{minion}: could not validate: {value}"]
        errors += [error for error in found if error not in errors]
    return errors
