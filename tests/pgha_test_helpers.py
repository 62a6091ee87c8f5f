"""Shared constants and helpers of pgha's unit tests (imported by the tests)."""

from __future__ import annotations

import importlib.util
import inspect
import pathlib
import sys
from types import ModuleType

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
SALT_DIR = REPO / "salt"
PILLAR_DIR = REPO / "pillar"

# Test passwords: unique strings, none of them a demo password, so finding one
# in any output can only be a leak.
TEST_SECRETS = {
    "superuser_password": "Su-pw-7f3a91c2e8",
    "replication_password": "Rep-pw-2b8c44d1a0",
    "admin_password": "Adm-pw-9d1e07b6f5",
    "restapi_password": "Api-pw-5c6f12e9d3",
    "haproxy_stats_password": "Stats-pw-8a4b33c7e1",
    "probe_password": "Probe-pw-4c1d9e2a7f",
    "pooler_password": "Pool-pw-0b7e3d9c21",
    "etcd_root_password": "EtcdRoot-pw-3e9a70b4c2",
    "etcd_patroni_password": "EtcdPat-pw-6d2f81a5b7",
}


def read_pillar(name: str) -> dict:
    """The pillar file pillar/pgha/<name>.sls (plain YAML, no Jinja) as a dict."""
    return yaml.safe_load((PILLAR_DIR / "pgha" / f"{name}.sls").read_text())


def load(kind: str, name: str) -> ModuleType:
    """
    A module of the formula (``kind``: _modules, _states, _runners, _utils)
    imported from its file, once per test session, under a name of its own
    (the execution and state modules share file names). Its loader dunders
    come from each test module's ``configure_loader_modules`` fixture.
    """
    key = f"pgha_test_{kind.strip('_')}_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / kind / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        # executed outside sys.modules, as Salt's loader does (dataclasses, for one, cannot be used there)
        spec.loader.exec_module(module)
        sys.modules[key] = module
    return sys.modules[key]


def utils(*names: str) -> dict:
    """What Salt's ``__utils__`` holds for these ``_utils`` modules: '<module>.<function>' -> the function."""
    found = {}
    for name in names:
        module = load("_utils", name)
        for attr, value in vars(module).items():
            if inspect.isfunction(value) and not attr.startswith("_") and value.__module__ == module.__name__:
                found[f"{name}.{attr}"] = value
    return found
