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
    "etcd_lock_password": "EtcdLock-pw-9b3e27c4d1",
    "backup_cipher_password": "Cipher-pw-1f8d52b7c3e6",
    "monitor_password": "Mon-pw-7a2c91e4d8b3",
}


def read_pillar(name: str) -> dict:
    """The pillar file pillar/pgha/<name>.sls (plain YAML, no Jinja) as a dict."""
    return yaml.safe_load((PILLAR_DIR / "pgha" / f"{name}.sls").read_text())


def defaults() -> dict:
    """The formula's defaults (salt/pgha/parameters/defaults.yaml)."""
    return yaml.safe_load((SALT_DIR / "pgha" / "parameters" / "defaults.yaml").read_text())


def production_given() -> dict:
    """The production example's pgha pillar with the test secrets: what the master is given."""
    pillar = read_pillar("production")["pgha"]
    pillar["secrets"] = dict(TEST_SECRETS)
    return pillar


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


DEFAULTS_FILE = SALT_DIR / "pgha" / "parameters" / "defaults.yaml"


def cluster_model(patch: dict | None = None, minion_id: str = "saltmaster_master", addresses: dict | None = None):
    """
    A real ``pgha_model.Cluster`` (the master's view, every secret): the
    production pillar with the test secrets, ``addresses`` (node -> address)
    and ``patch`` (merged into ``pgha``) applied.
    """
    model = load("_utils", "pgha_model")
    given = read_pillar("production")["pgha"]
    given["secrets"] = dict(TEST_SECRETS)
    for name, address in (addresses or {}).items():
        given["nodes"][name]["address"] = address
    defaults = yaml.safe_load(DEFAULTS_FILE.read_text())
    return model.build(defaults, model.merge(given, patch or {}), minion_id, secrets_of="all")


class FakeReach:
    """
    The cluster as the runner reaches it (``pgha_reach.Reach``) for unit
    tests: a real model, ``members`` (a function), and minion functions
    answered by ``handlers`` (function name -> handler(minion, *args,
    **kwargs)); every call is recorded in ``calls`` as (minion, function,
    *args, **sorted kwargs).
    """

    def __init__(self, cluster=None, members=None, handlers: dict | None = None, haproxy: dict | None = None,
                 etcd=None):
        self.cluster = cluster or cluster_model()
        self._etcd = etcd
        self._members = members or (list)
        self.handlers = dict(handlers or {})
        self.calls: list[tuple] = []
        self.rules = load("_utils", "pgha_cluster").rules()
        self._haproxy = haproxy or {}
        self.with_clusters: list = []

    def call(self, minion: str, function: str, *args, wait: int = 60, **kwargs):
        self.calls.append((minion, function, *args, *sorted(kwargs.items())))
        if function not in self.handlers:
            raise AssertionError(f"unexpected call {function} on {minion}")
        return self.handlers[function](minion, *args, **kwargs)

    def apply(self, minion: str, sls: str, wait: int = 600, pillar: dict | None = None):
        return self.call(minion, "state.apply", sls, **({"pillar": pillar} if pillar else {}))

    def members(self) -> list[dict]:
        return self._members()

    def leader(self, members=None):
        return self.rules.leader_of(self.members() if members is None else members)

    def haproxy(self, listener: str | None = "postgres") -> dict:
        return self._haproxy.get(listener, {}) if listener else dict(self._haproxy)

    def etcd(self, login: str = "root"):
        if self._etcd is None:
            raise AssertionError(f"unexpected etcd client ({login})")
        return self._etcd

    def with_cluster(self, cluster):
        self.with_clusters.append(cluster)
        other = FakeReach(cluster, self._members, self.handlers, self._haproxy)
        other.calls = self.calls
        return other
