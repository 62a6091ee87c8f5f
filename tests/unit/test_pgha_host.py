"""
Unit tests of _modules/pgha_host.py: what a host needs beyond its pillar
(the TLS files of its roles, a Patroni the formula may run), each problem
naming the pillar key, the path and the minion. The module reads the
cluster through pgha_config.mapdata (the real one, from test_pgha_config's
loader) and asks the running Patroni its version (urllib faked).
"""

from __future__ import annotations

import json
import os
import urllib.request
from unittest.mock import MagicMock

import pytest
from pgha_test_helpers import load, utils
from salt.exceptions import CommandExecutionError
from test_pgha_config import TLS_OFF, FakeRestApi, config_dunders, patched
from test_pgha_config import load_module as load_config

host_module = load("_modules", "pgha_host")


@pytest.fixture
def configure_loader_modules():
    modules = config_dunders()
    modules[host_module] = {"__salt__": {}, "__context__": {}, "__utils__": utils("pgha_rules", "pgha_cluster")}
    return modules


@pytest.fixture(autouse=True)
def rest_api(monkeypatch):
    """Every test: Patroni's REST API faked (check asks the running Patroni its version)."""
    fake = FakeRestApi()
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    return fake


def load_module(pillar=None, minion_id: str = "postgres01"):
    """pgha_host as this minion runs it: its map from the real pgha_config with this pillar."""
    config = load_config(pillar, minion_id=minion_id)
    host_module.__salt__.clear()
    host_module.__salt__["pgha_config.mapdata"] = config.mapdata
    host_module.__context__.clear()
    return host_module

# ---------------------------------------------------------------------------
# check: what a host needs beyond the pillar
# ---------------------------------------------------------------------------


def _host_with_pki(tmp_path, minion_id: str, files: tuple[str, ...]) -> None:
    pki = tmp_path / minion_id / "etc" / "pgha" / "pki"
    pki.mkdir(parents=True)
    for name in files:
        (pki / name).write_text("PEM")


BACKUP_PKI = ("pgbackrest-ca.crt", "pgbackrest.crt", "pgbackrest.key")
# a PostgreSQL node of a cluster with a backup node (the production pillar's) has pgBackRest's files too
PG_PKI = ("postgresql-ca.crt", "postgresql.crt", "postgresql.key", *BACKUP_PKI)


@pytest.mark.parametrize(
    ("minion_id", "present", "missing", "pgbouncer"),
    [
        ("etcd", ("etcd-ca.crt", "etcd.crt", "etcd.key"), [], False),
        ("etcd", ("etcd-ca.crt",), ["etcd:tls:cert_file", "etcd:tls:key_file"], False),
        ("postgres01", ("etcd-ca.crt", *PG_PKI), [], False),
        ("postgres01", PG_PKI, ["etcd:tls:ca_file"], False),
        ("postgres01", ("etcd-ca.crt", "postgresql-ca.crt", *BACKUP_PKI),
         ["postgresql:tls:cert_file", "postgresql:tls:key_file"], False),
        ("postgres01", ("etcd-ca.crt", *PG_PKI[:3], "pgbackrest-ca.crt"),
         ["backup:tls:cert_file", "backup:tls:key_file"], False),
        ("backup", BACKUP_PKI, [], False),
        ("backup", ("pgbackrest-ca.crt", "pgbackrest.crt"), ["backup:tls:key_file"], False),
        ("haproxy", (), [], False),  # HAProxy never talks to etcd, and passes PostgreSQL's TLS through
        ("haproxy", (), ["postgresql:tls:ca_file"], True),  # PgBouncer checks the servers against the CA
        ("haproxy", ("postgresql-ca.crt",), [], True),
        ("haproxy", (), ["postgresql:tls:ca_file"], None),  # HAProxy checks the REST API over https
    ],
)
def test_check_tls_files(production_pillar, tmp_path, minion_id, present, missing, pgbouncer):
    """pgbouncer None: PgBouncer off and the REST API over https."""
    _host_with_pki(tmp_path, minion_id, present)
    pillar = patched(production_pillar, {"lookup": {"root": f"{tmp_path}/{{id}}"},
                                         "pgbouncer": {"enabled": bool(pgbouncer)},
                                         "patroni": {"restapi_tls": pgbouncer is None},
                                         "monitor": {"tls": {"enabled": False}}})  # its own test below
    module = load_module(pillar, minion_id=minion_id)
    result = module.check()
    assert result["ready"] is (not missing)
    assert [error.split(": ")[0] for error in result["errors"]] == [f"pgha:{key}" for key in missing]
    for error in result["errors"]:
        assert error.endswith(f" is not a file on {minion_id}")
        assert str(tmp_path / minion_id) in error
    assert module.__context__.get("retcode") == (1 if missing else None)


MONITOR_PKI = ("monitor-ca.crt", "monitor.crt", "monitor.key")


@pytest.mark.parametrize(("minion_id", "present", "missing"), [
    ("haproxy", ("monitor.crt", "monitor.key"), []),  # every host's exporters serve https
    ("haproxy", ("monitor.crt",), ["monitor:tls:key_file"]),
    ("monitor", MONITOR_PKI, []),  # Prometheus verifies them with the CA
    ("monitor", ("monitor.crt", "monitor.key"), ["monitor:tls:ca_file"]),
])
def test_check_the_exporters_tls_files(production_pillar, tmp_path, minion_id, present, missing):
    _host_with_pki(tmp_path, minion_id, present)
    pillar = patched(production_pillar, {"lookup": {"root": f"{tmp_path}/{{id}}"}, "pgbouncer": {"enabled": False},
                                         "patroni": {"restapi_tls": False}})
    result = load_module(pillar, minion_id=minion_id).check()
    assert [error.split(": ")[0] for error in result["errors"]] == [f"pgha:{key}" for key in missing]
    assert result["ready"] is (not missing)
    if minion_id == "haproxy":  # monitoring off (no monitor node): nothing of the sort needed
        del pillar["pgha"]["nodes"]["monitor"]
        _host_with_pki(tmp_path / "off", minion_id, ())
        pillar = patched(pillar, {"lookup": {"root": f"{tmp_path}/off/{{id}}"}})
        assert load_module(pillar, minion_id="haproxy").check()["ready"] is True


def test_check_tls_off_needs_nothing(production_pillar, tmp_path):
    pillar = patched(production_pillar, {"lookup": {"root": f"{tmp_path}/{{id}}"}, "etcd": {"tls": {"enabled": False}},
                                         "postgresql": {"tls": TLS_OFF}, "patroni": {"restapi_tls": False},
                                         "monitor": {"tls": {"enabled": False}}})
    assert load_module(pillar, minion_id="etcd").check() == {
        "ready": True, "errors": [], "patroni_version": None, "patroni_running": None
    }


def test_check_refuses_an_invalid_pillar(production_pillar):
    pillar = patched(production_pillar, {"patroni": {"ttl": 5}})
    with pytest.raises(CommandExecutionError, match="pgha:patroni:ttl"):
        load_module(pillar, minion_id="etcd").check()


# ---------------------------------------------------------------------------
# check: the Patroni a PostgreSQL node has
# ---------------------------------------------------------------------------


def _patroni_host(production_pillar, tmp_path, patch: dict | None = None, minion_id: str = "postgres01",
                  version_output: str | None = None, installed: str = "", candidate: str = "", binary: str | None = None):
    """check's module for a host under tmp_path, with a Patroni binary printing version_output (None: absent)."""
    pillar = patched(production_pillar, {"lookup": {"root": f"{tmp_path}/{{id}}"}, "etcd": {"tls": {"enabled": False}},
                                         "postgresql": {"tls": TLS_OFF}, "patroni": {"restapi_tls": False},
                                         "monitor": {"tls": {"enabled": False}}})
    pillar = patched(pillar, patch or {})
    del pillar["pgha"]["nodes"]["backup"]  # no backup node: no pgBackRest files either
    module = load_module(pillar, minion_id=minion_id)
    path = binary or f"{tmp_path}/{minion_id}/opt/pgha/patroni/bin/patroni"
    if version_output is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").close()
    module.__salt__.update({
        "cmd.run_all": MagicMock(return_value={"retcode": 0, "stdout": version_output or "", "stderr": ""}),
        "pkg.version": MagicMock(return_value=installed),
        "pkg.latest_version": MagicMock(return_value=candidate),
    })
    return module, path


def test_check_reports_the_installed_patroni(production_pillar, tmp_path):
    module, binary = _patroni_host(production_pillar, tmp_path, version_output="patroni 4.1.5\n")
    assert module.check() == {"ready": True, "errors": [], "patroni_version": "4.1.5", "patroni_running": None}
    module.__salt__["cmd.run_all"].assert_called_once_with(
        [binary, "--version"], python_shell=False, ignore_retcode=True, timeout=30
    )
    module.__salt__["pkg.version"].assert_not_called()


def test_check_patroni_not_installed_yet(production_pillar, tmp_path):
    module, _ = _patroni_host(production_pillar, tmp_path)
    assert module.check() == {"ready": True, "errors": [], "patroni_version": None, "patroni_running": None}
    module.__salt__["cmd.run_all"].assert_not_called()
    # with pip, the package manager is not asked
    module.__salt__["pkg.version"].assert_not_called()
    module.__salt__["pkg.latest_version"].assert_not_called()


def test_check_patroni_that_does_not_tell_its_version(production_pillar, tmp_path):
    module, _ = _patroni_host(production_pillar, tmp_path, version_output="")
    module.__salt__["cmd.run_all"].return_value = {"retcode": 1, "stdout": "", "stderr": "ImportError"}
    assert module.check()["patroni_version"] is None


def test_check_pip_straight_from_before_3_1_to_4_is_refused(production_pillar, tmp_path):
    module, binary = _patroni_host(production_pillar, tmp_path, version_output="patroni 3.0.2")
    result = module.check()
    assert result["ready"] is False
    assert result["patroni_version"] == "3.0.2"
    [error] = result["errors"]
    assert error.startswith("pgha:patroni:version: 4.1.5, but postgres01 has Patroni 3.0.2 (" + binary + ")")
    assert "moves to 4.x reliably only from 3.1 or later" in error
    assert "salt-run pgha.restart what=patroni" in error
    assert module.__context__["retcode"] == 1


def test_check_pip_from_before_3_1_to_3_x_is_the_way(production_pillar, tmp_path):
    patch = {"patroni": {"version": "3.3.11"}}
    module, _ = _patroni_host(production_pillar, tmp_path, patch, version_output="patroni 3.0.2")
    assert module.check()["errors"] == []


def test_check_package_too_old_is_refused(production_pillar, tmp_path):
    binary = f"{tmp_path}/usr-bin/patroni"
    patch = {"lookup": {"patroni": {"install": "package", "binary": binary}}}
    module, _ = _patroni_host(production_pillar, tmp_path, patch, version_output="patroni 3.0.2", binary=binary)
    result = module.check()
    assert result["ready"] is False
    assert result["patroni_version"] == "3.0.2"
    [error] = result["errors"]
    assert error.startswith(f"pgha:lookup:patroni:install: package: Patroni 3.0.2 on postgres01 ({binary}) is older than 3.1: ")
    assert "lose acknowledged writes when a frozen leader wakes up" in error


def test_check_package_too_old_allowed_to_measure(production_pillar, tmp_path):
    binary = f"{tmp_path}/usr-bin/patroni"
    patch = {"lookup": {"patroni": {"install": "package", "binary": binary}}, "patroni": {"allow_unsafe_version": True}}
    module, _ = _patroni_host(production_pillar, tmp_path, patch, version_output="patroni 3.0.2", binary=binary)
    result = module.check()
    assert (result["ready"], result["patroni_version"]) == (True, "3.0.2")


def test_check_package_candidate(production_pillar, tmp_path):
    patch = {"lookup": {"patroni": {"install": "package", "binary": f"{tmp_path}/none/patroni"}}}
    module, _ = _patroni_host(production_pillar, tmp_path, patch, candidate="3.0.2-1")
    result = module.check()
    assert result["patroni_version"] == "3.0.2"
    assert "(package patroni, candidate) is older than 3.1" in result["errors"][0]
    module.__salt__["pkg.version"].assert_called_once_with("patroni")
    # never an apt-get update from a check
    module.__salt__["pkg.latest_version"].assert_called_once_with("patroni", refresh=False)


def test_check_package_installed_recent(production_pillar, tmp_path):
    patch = {"lookup": {"patroni": {"install": "package", "binary": f"{tmp_path}/none/patroni"}}}
    module, _ = _patroni_host(production_pillar, tmp_path, patch, installed="1:4.0.4-1")
    result = module.check()
    assert (result["ready"], result["patroni_version"]) == (True, "4.0.4")
    module.__salt__["pkg.latest_version"].assert_not_called()


def test_check_tls_only(production_pillar, tmp_path):
    module, _ = _patroni_host(production_pillar, tmp_path, version_output="patroni 3.0.2")
    result = module.check(patroni=False)
    assert result == {"ready": True, "errors": [], "patroni_version": None, "patroni_running": None}
    module.__salt__["cmd.run_all"].assert_not_called()


@pytest.mark.parametrize("minion_id", ["etcd", "haproxy"])
def test_check_no_patroni_on_other_roles(production_pillar, tmp_path, minion_id, rest_api):
    module, _ = _patroni_host(production_pillar, tmp_path, minion_id=minion_id, version_output="patroni 3.0.2")
    assert module.check() == {"ready": True, "errors": [], "patroni_version": None, "patroni_running": None}
    module.__salt__["cmd.run_all"].assert_not_called()
    assert rest_api.urls == []


def test_check_asks_the_running_patroni(production_pillar, tmp_path, rest_api):
    rest_api.answers["http://10.131.0.15:8008/patroni"] = json.dumps(
        {"state": "running", "patroni": {"version": "4.1.4", "scope": "postgres", "name": "postgres01"}}
    ).encode()
    module, _ = _patroni_host(production_pillar, tmp_path, version_output="patroni 4.1.5")
    result = module.check()
    assert (result["patroni_version"], result["patroni_running"]) == ("4.1.5", "4.1.4")
    assert rest_api.urls == ["http://10.131.0.15:8008/patroni"]


@pytest.mark.parametrize("body", [b"not json", b'{"patroni": "4.1.5"}', b'{"state": "running"}', b"[]"])
def test_running_patroni_version_odd_answers(production_pillar, rest_api, body):
    rest_api.answers["http://10.131.0.15:8008/patroni"] = body
    module = load_module(patched(production_pillar, {"patroni": {"restapi_tls": False}}))
    assert module._running_patroni_version(module.__salt__["pgha_config.mapdata"]()) is None


def test_running_patroni_version_without_its_ca(production_pillar):
    """https and the CA not on this host (check_host names the missing file): no version, no traceback."""
    module = load_module(patched(production_pillar, {"lookup": {"root": "/nonexistent/{id}"}}))
    assert module._running_patroni_version(module.__salt__["pgha_config.mapdata"]()) is None


def test_check_pip_running_before_3_1_straight_to_4_is_refused(production_pillar, tmp_path, rest_api):
    # moving a cluster from Debian's package (3.0.2, running) to pip: the virtualenv is not there yet
    rest_api.answers["http://10.131.0.15:8008/patroni"] = b'{"patroni": {"version": "3.0.2", "scope": "postgres"}}'
    module, _ = _patroni_host(production_pillar, tmp_path)
    result = module.check()
    assert (result["patroni_version"], result["patroni_running"]) == (None, "3.0.2")
    [error] = result["errors"]
    assert error.startswith("pgha:patroni:version: 4.1.5, but postgres01 has Patroni 3.0.2 (running now), older than 3.1")


def test_check_pip_running_before_3_1_to_3_x(production_pillar, tmp_path, rest_api):
    rest_api.answers["http://10.131.0.15:8008/patroni"] = b'{"patroni": {"version": "3.0.2", "scope": "postgres"}}'
    module, _ = _patroni_host(production_pillar, tmp_path, {"patroni": {"version": "3.3.11"}})
    assert module.check()["ready"] is True
