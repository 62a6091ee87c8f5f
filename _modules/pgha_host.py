"""
What a pgha host needs beyond its pillar, checked before any state changes
it: the TLS files the operator's PKI must have placed (by the host's roles)
and a Patroni the formula may run (the installed one, the package's
candidate, and the version the running Patroni reports). The orchestration
runs ``check`` on every minion first (stage ``pgha-orch-hosts-ready``) and
the TLS states run it again while rendering a host's states. Every problem
names the pillar key, the path and this minion.
"""

from __future__ import annotations

import logging
import os

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_host"

# Which TLS files (pillar <section>:tls) a host needs, by its roles.
TLS_NEEDS = {
    "etcd": {"ca_file": {"etcd", "postgresql"}, "cert_file": {"etcd"}, "key_file": {"etcd"}},
    # the CA on the HAProxy node too, when PgBouncer verifies the servers or HAProxy checks the REST API over https
    "postgresql": {"ca_file": {"postgresql", "haproxy"}, "cert_file": {"postgresql"}, "key_file": {"postgresql"}},
    # pgBackRest's servers and clients, whenever the cluster has a backup node
    "backup": {name: {"postgresql", "backup"} for name in ("ca_file", "cert_file", "key_file")},
    # the exporters' https (monitor:tls): every host's certificate and key, the CA on the monitor node
    "monitor": {"ca_file": {"monitor"}, **{name: {"etcd", "postgresql", "haproxy", "backup", "monitor"}
                                            for name in ("cert_file", "key_file")}},
}


def __virtual__():
    return __virtualname__


def _key(*parts) -> str:
    return ":".join(["pgha", *[str(part) for part in parts]])


def _version(text) -> tuple[int, ...] | None:
    return __utils__["pgha_rules.version_tuple"](text)


def _floor() -> tuple[tuple[int, ...], str]:
    """The oldest Patroni the formula runs, and why (pgha_rules)."""
    return __utils__["pgha_rules.safe_patroni"]()


def _run_version(binary: str) -> str | None:
    """``<binary> --version`` ('patroni 4.1.5') as '4.1.5', or None when it does not tell."""
    ret = __salt__["cmd.run_all"]([binary, "--version"], python_shell=False, ignore_retcode=True, timeout=30)
    version = _version(ret.get("stdout", "")) if ret.get("retcode") == 0 else None
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
            found = _version(__salt__[function](package, **kwargs) or "")
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
    return version if _version(version or "") else None


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
        if _version(target) < (4,):
            return []
        before = [(found, where) for found, where in ((version, source), (running, "running now"))
                  if found and _version(found) < _floor()[0]]
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
    if version is None or _version(version) >= _floor()[0] or data["patroni"]["allow_unsafe_version"]:
        return []
    message = (
        f"{_key('lookup', 'patroni', 'install')}: package: Patroni {version} on {data['id']} ({source}) is older "
        f"than 3.1: {_floor()[1]}; use install: pip with patroni:version (docs/how-to/upgrade-patroni.md) or "
        "a newer package (patroni:allow_unsafe_version: true only to measure "
        "the old behaviour)"
    )
    return [message]


def check(saltenv: str = "base", patroni: bool = True) -> dict:
    """
    What this host must have before the formula's states run, beyond the
    pillar: with ``pgha:etcd:tls`` on, the CA on etcd and PostgreSQL nodes and
    the member certificate and key on etcd nodes; with ``pgha:postgresql:tls``
    on, the CA, certificate and key on PostgreSQL nodes and the CA on the
    HAProxy node when PgBouncer runs there or HAProxy checks Patroni's REST
    API over https (``patroni:restapi_tls``); with a backup node,
    pgBackRest's CA, certificate and key (``pgha:backup:tls``) on it and on
    every PostgreSQL node; with monitoring and ``pgha:monitor:tls`` on, the
    exporters' certificate and key on every host and the CA on the monitor
    node (the operator's PKI places them; pgha never creates them); on
    PostgreSQL nodes, a Patroni of 3.1 or
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

        salt '*' pgha_host.check
    """
    data = __salt__["pgha_config.mapdata"](saltenv=saltenv)
    errors = []
    for section, needs in TLS_NEEDS.items():
        tls = data[section]["tls"]
        if not (data["backup"]["enabled"] if section == "backup" else tls["enabled"]):
            continue
        if section == "monitor" and not data["monitor"]["enabled"]:
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
