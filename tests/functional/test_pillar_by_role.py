"""
The shipped pillar top file (pillar/top.sls) renders, for each minion of the
production example, the cluster's description and only the secrets its
roles use; the master is given them all. Salt's own pillar compiler, through
`salt-call --local pillar.items`, with pillar/pgha_secrets.yaml standing in
a directory of its own.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from pgha_test_helpers import PILLAR_DIR, TEST_SECRETS
from test_rendering import SALT_CALL

# The pooler's password goes where PgBouncer's role is made and where PgBouncer runs; with PgBouncer off (the
# production example) no role has it in PostgreSQL, so it opens nothing.
POSTGRESQL = {"superuser_password", "replication_password", "admin_password", "restapi_password", "probe_password",
              "etcd_patroni_password", "pooler_password", "backup_cipher_password", "monitor_password"}


def _pillar_reader(base, top: str | None = None):
    (base / "pillar").mkdir()
    if top is not None:  # a top file of its own, earlier in pillar_roots than the shipped one
        (base / "pillar" / "top.sls").write_text(top)
    (base / "pillar" / "pgha_secrets.yaml").write_text(yaml.safe_dump({"pgha": {"secrets": TEST_SECRETS}}))
    config = {"file_client": "local", "root_dir": str(base), "cachedir": str(base / "cache"),
              "pki_dir": str(base / "pki"), "log_file": str(base / "minion.log"), "file_roots": {"base": [str(base)]},
              "pillar_roots": {"base": [str(base / "pillar"), str(PILLAR_DIR)]}}
    (base / "minion").write_text(yaml.safe_dump(config))

    def pillar(minion_id: str) -> dict:
        proc = subprocess.run([str(SALT_CALL), "--local", "-c", str(base), "--id", minion_id, "--out=json",
                               "--log-level=warning", "pillar.items", "unmask=True"], capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout)["local"]

    return pillar


@pytest.fixture(scope="module")
def pillar_of(tmp_path_factory):
    return _pillar_reader(tmp_path_factory.mktemp("pillar-by-role"))


@pytest.fixture(scope="module")
def ha_pillar_of(tmp_path_factory):
    """The shipped top file with its `stack` set to the three-member etcd topology, as docs/tutorials/topologies.md says."""
    shipped = (PILLAR_DIR / "top.sls").read_text()
    seed = "{%- set stack = ['pgha/production.sls'] %}"
    assert seed in shipped
    top = shipped.replace(seed, "{%- set stack = ['pgha/production.sls', 'pgha/production_ha.sls'] %}")
    return _pillar_reader(tmp_path_factory.mktemp("pillar-by-role-ha"), top)


@pytest.mark.parametrize(("minion_id", "own"), [
    ("postgres01", POSTGRESQL),
    ("postgres03", POSTGRESQL),
    ("etcd", {"etcd_root_password", "etcd_patroni_password", "etcd_lock_password"}),
    ("haproxy", {"haproxy_stats_password", "pooler_password", "monitor_password"}),
    ("backup", {"backup_cipher_password"}),
    ("monitor", set()),  # Prometheus and Alertmanager read no password
    ("saltmaster_master", set(TEST_SECRETS)),
    ("intruder", set()),
])
def test_each_minion_gets_the_secrets_of_its_roles_only(pillar_of, minion_id, own):
    pillar = pillar_of(minion_id)
    assert "_errors" not in pillar, pillar.get("_errors")
    assert sorted(pillar["pgha"]["nodes"]) == ["backup", "etcd", "haproxy", "monitor", "postgres01", "postgres02",
                                               "postgres03"]
    given = pillar["pgha"].get("secrets") or {}
    assert set(given) == own
    assert all(given[key] == TEST_SECRETS[key] for key in given)
    text = json.dumps(pillar)
    assert not [key for key in set(TEST_SECRETS) - own if TEST_SECRETS[key] in text]


@pytest.mark.parametrize(("minion_id", "own"), [
    ("postgres01", POSTGRESQL | {"etcd_root_password", "etcd_lock_password"}),
    ("postgres02", POSTGRESQL | {"etcd_root_password", "etcd_lock_password"}),
    ("postgres03", POSTGRESQL),
    ("etcd", {"etcd_root_password", "etcd_patroni_password", "etcd_lock_password"}),
    ("haproxy", {"haproxy_stats_password", "pooler_password", "monitor_password"}),
])
def test_three_member_etcd_gives_the_co_located_members_the_etcd_secrets(ha_pillar_of, minion_id, own):
    pillar = ha_pillar_of(minion_id)
    assert "_errors" not in pillar, pillar.get("_errors")
    nodes = pillar["pgha"]["nodes"]
    assert sorted(node for node in nodes if "etcd" in nodes[node]["roles"]) == ["etcd", "postgres01", "postgres02"]
    assert nodes["postgres01"]["address"] == "10.131.0.15"  # the overlay changes roles only
    assert set(pillar["pgha"].get("secrets") or {}) == own
