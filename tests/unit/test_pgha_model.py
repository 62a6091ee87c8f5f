"""
Unit tests of _utils/pgha_model.py: the one function that builds the
cluster's model (merge, check, derive), the typed fields code reads, the
secrets kept apart and masked, and a model counting leaving members
returned anew, the original untouched.
"""

from __future__ import annotations

import pytest
from pgha_test_helpers import TEST_SECRETS, defaults, load, production_given

model = load("_utils", "pgha_model")
DEFAULTS = defaults()


@pytest.fixture
def given() -> dict:
    return production_given()


def test_build_derives_the_cluster_once_for_a_minion(given):
    cluster = model.build(DEFAULTS, given, "postgres02")
    assert cluster.id == "postgres02" and cluster.roles == ("postgresql",)
    assert cluster.pg_nodes == ("postgres01", "postgres02", "postgres03")
    assert (cluster.bootstrap_leader, cluster.replicas) == ("postgres01", ("postgres02", "postgres03"))
    assert cluster.nodes["etcd"] == model.Node("etcd", "10.131.0.5", ("etcd",))
    assert cluster.address("postgres03") == "10.131.0.6"
    assert cluster.restapi_urls["postgres01"] == "https://10.131.0.15:8008"
    assert cluster.etcd.client_urls == {"etcd": "https://10.131.0.5:2379"}
    assert cluster.etcd.prefix == "/db/postgres/" and cluster.etcd.auth is True
    assert [listener.name for listener in cluster.haproxy.listeners] == [
        "postgres", "postgres_replicas", "postgres_sync", "postgres_async"]
    assert cluster.haproxy.stats_url == "http://10.131.0.3:8080/;csv"
    assert cluster.pooler == model.Pooler(False, 6432, "transaction", None)
    # derived defaults: the freeze lasts ttl + 10 s unless pillar says
    assert cluster.drill.freeze_s == cluster.patroni.ttl + 10 == 40
    assert cluster.gates == model.Gates(180, 0)


def test_the_master_is_no_node_and_may_check_every_secret(given):
    cluster = model.build(DEFAULTS, given, "salt_master", secrets_of="all")
    assert cluster.roles == () and cluster.pg_nodes
    del given["secrets"]["haproxy_stats_password"]
    with pytest.raises(model.ModelError) as refused:
        model.build(DEFAULTS, given, "salt_master", secrets_of="all")
    assert refused.value.errors == ["pgha:secrets:haproxy_stats_password: required, must be a non-empty string"]
    # a PostgreSQL node is not given that secret and does not check it
    assert model.build(DEFAULTS, given, "postgres01").pg_nodes


def test_an_invalid_pillar_names_every_wrong_key(given):
    given["patroni"]["ttl"] = 5
    given["cluster"]["namespace"] = "db"
    with pytest.raises(model.ModelError) as refused:
        model.build(DEFAULTS, given, "postgres01")
    named = [error.split(": ")[0] for error in refused.value.errors]
    assert named[:2] == ["pgha:cluster:namespace", "pgha:patroni:ttl"]
    assert "pgha:patroni:watchdog:safety_margin" in named  # ttl - safety_margin no longer covers loop_wait
    assert str(refused.value).startswith("pgha: the pillar is invalid, nothing was changed:")


def test_secrets_are_apart_and_masked_unless_asked_for(given):
    cluster = model.build(DEFAULTS, given, "postgres01")
    assert "secrets" not in cluster.settings
    shown = repr(cluster) + repr(cluster.secrets) + repr(cluster.as_map())
    assert not any(value in shown for value in TEST_SECRETS.values())
    assert cluster.as_map()["secrets"] == {name: model.MASK for name in TEST_SECRETS}
    assert cluster.as_map(show_secrets=True)["secrets"] == TEST_SECRETS
    assert cluster.secrets.get("probe_password") == TEST_SECRETS["probe_password"]
    assert cluster.secrets.get("nothing", "default") == "default"


def test_paths_under_the_hosts_root(given):
    given["lookup"] = {"root": "/srv/lab/{id}", "service_manager": "supervisord"}
    cluster = model.build(DEFAULTS, given, "etcd")
    lookup = cluster.settings["lookup"]
    assert lookup["root"] == "/srv/lab/etcd"
    assert lookup["etcd"]["data_dir"] == "/srv/lab/etcd/var/lib/etcd/default"
    assert lookup["postgresql"]["bin_dir"] == "/usr/lib/postgresql/15/bin"  # a binary path stays
    assert cluster.etcd.cafile == "/srv/lab/etcd/etc/pgha/pki/etcd-ca.crt"


def test_with_members_returns_a_new_model_counting_the_leaving_member(given):
    cluster = model.build(DEFAULTS, given, "salt_master", secrets_of="all")
    leaving = [{"name": "postgres04", "host": "10.131.0.40"}, {"name": "postgres01", "host": "10.131.0.15"}]
    wider = cluster.with_members(leaving)
    assert wider.pg_nodes == ("postgres01", "postgres02", "postgres03", "postgres04")
    assert wider.address("postgres04") == "10.131.0.40"
    assert wider.secrets.get("restapi_password") == TEST_SECRETS["restapi_password"]
    assert cluster.pg_nodes == ("postgres01", "postgres02", "postgres03") and "postgres04" not in cluster.nodes


def test_merge_replaces_scalars_and_merges_maps_without_touching_its_arguments():
    base = {"a": {"b": 1, "c": [1]}, "d": 1}
    assert model.merge(base, {"a": {"b": 2}, "d": {"x": 1}}) == {"a": {"b": 2, "c": [1]}, "d": {"x": 1}}
    assert base == {"a": {"b": 1, "c": [1]}, "d": 1}


def test_siblings_load_from_beside_the_model_once():
    assert model.sibling("pgha_rules") is model.sibling("pgha_rules")
    assert model.sibling("pgha_rules").RULES
