"""Shared constants and helpers of pgha's unit tests (imported by the tests)."""

from __future__ import annotations

import importlib.util
import pathlib
import types

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
SALT_DIR = REPO / "salt"
PILLAR_DIR = REPO / "pillar"
MODULE_PATH = REPO / "_modules" / "pgha_config.py"

# Test passwords: unique strings, none of them a demo password, so finding one
# in any output can only be a leak.
TEST_SECRETS = {
    "superuser_password": "Su-pw-7f3a91c2e8",
    "replication_password": "Rep-pw-2b8c44d1a0",
    "admin_password": "Adm-pw-9d1e07b6f5",
    "restapi_password": "Api-pw-5c6f12e9d3",
    "haproxy_stats_password": "Stats-pw-8a4b33c7e1",
    "etcd_root_password": "EtcdRoot-pw-3e9a70b4c2",
    "etcd_patroni_password": "EtcdPat-pw-6d2f81a5b7",
}


def read_pillar(name: str) -> dict:
    """The pillar file pillar/pgha/<name>.sls (plain YAML, no Jinja) as a dict."""
    return yaml.safe_load((PILLAR_DIR / "pgha" / f"{name}.sls").read_text())


def import_salt_module(relpath: str, name: str) -> types.ModuleType:
    """
    One of the formula's Salt modules (``_modules/x.py``, ``_states/x.py``)
    imported from its file under a name of its own, without Salt's loader:
    for pytest-salt-factories' ``configure_loader_modules``, which injects
    the dunders (``__salt__``, ``__opts__``, ...) around each test.
    """
    spec = importlib.util.spec_from_file_location(name, REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
