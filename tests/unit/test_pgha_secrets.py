"""
Unit tests of _utils/pgha_secrets.py, the one rule of which secrets each
role uses and what a usable one is, and of its agreement with the pillar
files that give each minion its roles' secrets (pillar/pgha/secrets/).
"""

from __future__ import annotations

import ast
import re

import pytest
from pgha_test_helpers import PILLAR_DIR, TEST_SECRETS, load

secrets = load("_utils", "pgha_secrets")
PG = ["superuser_password", "replication_password", "admin_password", "restapi_password", "probe_password",
      "etcd_patroni_password", "pooler_password"]


def test_needed_by_role_with_etcds_access_control_and_the_pooler():
    assert secrets.needed(["postgresql"], True, True) == PG
    assert secrets.needed(["postgresql"], True) == PG[:-1]  # no pooler
    assert secrets.needed(["postgresql"], False) == PG[:-2]
    assert secrets.needed(["etcd"], True) == ["etcd_root_password", "etcd_patroni_password", "etcd_lock_password"]
    assert secrets.needed(["etcd"], False) == []
    assert secrets.needed(["haproxy"], True) == ["haproxy_stats_password"]
    assert secrets.needed(["haproxy"], True, True) == ["haproxy_stats_password", "pooler_password"]
    # a node with two roles needs each secret once
    assert secrets.needed(["etcd", "postgresql"], True) == [*PG[:-1], "etcd_root_password", "etcd_lock_password"]
    assert secrets.needed([], True) == []
    # the exporters' role: postgres_exporter on PostgreSQL nodes, the pooler's exporter on the HAProxy node
    assert secrets.needed(["postgresql"], True, monitor=True) == [*PG[:-1], "monitor_password"]
    assert secrets.needed(["haproxy"], True, monitor=True) == ["haproxy_stats_password"]
    assert secrets.needed(["haproxy"], True, True, monitor=True) == ["haproxy_stats_password", "pooler_password",
                                                                      "monitor_password"]
    assert secrets.needed(["monitor", "etcd"], False, monitor=True) == []
    assert sorted(secrets.everyone(True, True, True, True)) == sorted(TEST_SECRETS)
    assert "backup_cipher_password" not in secrets.everyone(True, True)


@pytest.mark.parametrize(("value", "problem"), [
    (None, "required, must be a non-empty string"),
    ("", "required, must be a non-empty string"),
    (12345678, "required, must be a non-empty string"),
    ("two\nlines", "must be one line"),
    ("Admin", "a well-known demo password; choose another"),
])
def test_problems(value, problem):
    assert secrets.problems({"admin_password": value}, ["admin_password"]) == [f"pgha:secrets:admin_password: {problem}"]
    assert secrets.problems({"admin_password": TEST_SECRETS["admin_password"]}, ["admin_password"]) == []


def test_stats_password_must_fit_haproxys_config_line():
    assert secrets.problems({"haproxy_stats_password": "a#b"}, ["haproxy_stats_password"])[0].endswith(
        "must not contain spaces, tabs, #, quotes or backslashes (HAProxy's stats auth line)")
    assert secrets.problems({"admin_password": "a#b c"}, ["admin_password"]) == []


def test_cluster_problems_merge_a_change_and_follow_etcds_access_control():
    master = {"secrets": dict(TEST_SECRETS)}
    assert secrets.cluster_problems(master) == []
    del master["secrets"]["etcd_root_password"]
    assert secrets.cluster_problems(master) == ["pgha:secrets:etcd_root_password: required, must be a non-empty string"]
    assert secrets.cluster_problems(master, {"pgha": {"secrets": {"etcd_root_password": "Root-pw-2c9d"}}}) == []
    assert secrets.cluster_problems(dict(master, etcd={"auth": {"enabled": False}})) == []
    # the pooler's only with PgBouncer, the repository's only with a backup node, the exporters' only with monitoring
    assert len(secrets.cluster_problems({})) == len(TEST_SECRETS) - 3
    with_backup = {"nodes": {"backup": {"address": "10.0.0.9", "roles": ["backup"]}}}
    assert len(secrets.cluster_problems(with_backup)) == len(TEST_SECRETS) - 2
    with_monitor = {"nodes": {"monitor": {"address": "10.0.0.10", "roles": ["monitor"]}}}
    assert "pgha:secrets:monitor_password: required, must be a non-empty string" in \
        secrets.cluster_problems(with_monitor)
    assert "pgha:secrets:monitor_password: required, must be a non-empty string" in \
        secrets.cluster_problems({"monitor": {"exporters": True}})
    without_pooler = {"secrets": {k: v for k, v in TEST_SECRETS.items() if k != "pooler_password"}}
    assert secrets.cluster_problems(without_pooler) == []
    assert secrets.cluster_problems(dict(without_pooler, pgbouncer={"enabled": True})) == [
        "pgha:secrets:pooler_password: required, must be a non-empty string"]


@pytest.mark.parametrize("role", ["postgresql", "etcd", "haproxy", "backup"])
def test_each_roles_pillar_file_gives_exactly_its_secrets(role):
    text = (PILLAR_DIR / "pgha" / "secrets" / f"{role}.sls").read_text()
    picked = ast.literal_eval(re.search(r"pick\(given, (\[.*?\])\)", text, re.DOTALL).group(1))
    with_backup = secrets.POSTGRESQL_WITH_BACKUP if role == "postgresql" else ()
    assert picked == list(secrets.ROLE_SECRETS[role]) + list(with_backup)
    assert secrets.needed([role], True, True, backup=True, monitor=True) == picked


def test_the_repository_passphrase_only_with_a_backup_node_and_only_to_its_users():
    assert "backup_cipher_password" not in secrets.needed(["postgresql"], True, True)
    assert "backup_cipher_password" in secrets.needed(["postgresql"], True, True, backup=True)
    assert secrets.needed(["backup"], True, True, backup=True) == ["backup_cipher_password"]
    assert "backup_cipher_password" not in secrets.needed(["etcd", "haproxy"], True, True, backup=True)


def test_minion_errors_name_each_minion_that_did_not_answer_or_failed():
    ret = {"postgres01": {"ret": {"valid": False, "errors": ["pgha:patroni:ttl: at least 20"]}, "retcode": 1},
           "etcd": {"ret": {"valid": False, "errors": ["pgha:patroni:ttl: at least 20"]}, "retcode": 1},
           "haproxy": {"ret": "'pgha_config.validate' is not available.", "retcode": 1}}
    errors = secrets.minion_errors(ret, ["postgres01", "etcd", "haproxy", "postgres02"], "list")
    assert errors == ["postgres02: did not answer", "pgha:patroni:ttl: at least 20",
                      "haproxy: could not validate: 'pgha_config.validate' is not available."]
    assert secrets.minion_errors({}, "*", "glob") == ["no minion matching '*' answered"]
