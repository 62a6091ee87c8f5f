"""
Unit tests of _utils/pgha_schema.py: the table of single values (every
check refuses what it must and names the full key path), the walk over
maps and lists, unknown keys and sections that must be maps.
"""

from __future__ import annotations

import pytest
import yaml
from pgha_test_helpers import SALT_DIR, load

schema = load("_utils", "pgha_schema")
DEFAULTS = yaml.safe_load((SALT_DIR / "pgha" / "parameters" / "defaults.yaml").read_text())


def test_every_table_key_exists_in_the_defaults():
    """A key of the table that the defaults lack would check nothing (or everything as null)."""
    for path in schema.SCHEMA:
        node = DEFAULTS
        for part in path.split(":"):
            part = part.removesuffix("[]")
            if part == "*" or node is None:
                break
            assert isinstance(node, dict) and part in node, path
            node = node[part]


def test_the_defaults_pass_the_table():
    assert schema.table_problems(DEFAULTS) == []


@pytest.mark.parametrize(("check", "good", "bad", "words"), [
    (schema.boolean, True, "yes", "must be true or false (got 'yes')"),
    (schema.integer(20), 20, 19, "must be at least 20 (got 19)"),
    (schema.integer(1, 4096), 4096, 4097, "must be at most 4096 (got 4097)"),
    (schema.integer(0), 0, True, "must be an integer (got True)"),
    (schema.port, 65535, 0, "must be a port number 1-65535 (got 0)"),
    (schema.duration, "250ms", "soon", "must be a duration such as 3s, 500ms or 30m (got 'soon')"),
    (schema.optional(schema.duration), None, "-1s", "must be a duration"),
    (schema.bind, "*", "all", "must be an IP address or '*' (got 'all')"),
    (schema.cidr, "10.0.0.0/8", "10.0.0.1/8", "not a network in CIDR form"),
    (schema.cidr, "fd00::/64", "10.0.0.7", "give the prefix length, e.g. 10.0.0.7/32"),
    (schema.abs_path("directory"), "/srv/x", "srv/x", "must be an absolute directory without spaces"),
    (schema.root, "", "srv/{id}", "must be empty or an absolute path"),
    (schema.release, "4.1.5", 4.1, "must be a release X.Y.Z, quoted"),
    (schema.packages, ["patroni"], "patroni", "must be a list of package names"),
    (schema.index_url, None, "pypi.example.com", "must be null or an http(s):// or file:// URL"),
    (schema.initial_cluster, "etcd=https://10.0.0.5:2380", "etcd 10.0.0.5", "name=peer URL pairs"),
    (schema.user_name, "pgha_probe", "pgha-probe", "must be a user name of letters, digits and _"),
    (schema.probe_database, "pgha", "template1", "not postgres or a template"),
    (schema.watchdog_mode, False, "on", "must be one of off, automatic, required (got 'on')"),
    (schema.choice("a", "b"), "a", "c", "must be one of a, b (got 'c')"),
])
def test_checks(check, good, bad, words):
    assert check(good) is None
    assert words in check(bad)


def test_table_names_list_items_and_map_keys_by_full_path():
    cfg = yaml.safe_load(yaml.safe_dump(DEFAULTS))
    cfg["postgresql"]["client_networks"] = ["10.0.0.0/8", "10.0.0.1/8"]
    cfg["haproxy"]["timeout"]["client"] = "30 minutes"
    cfg["users"]["admin"] = "adm in"
    found = schema.table_problems(cfg)
    assert [line.split(": ")[0] for line in found] == [
        "pgha:postgresql:client_networks:1", "pgha:haproxy:timeout:client", "pgha:users:admin"]


def test_unknown_keys_and_sections_that_must_be_maps():
    written = {"patroni": {"tll": 30}, "patorni": {}, "lookup": {"etcd": "etcd-server"},
               "postgresql": {"parameters": {"anything": 1}}}
    found = schema.unknown_keys(written, DEFAULTS)
    assert found[0].startswith("pgha:patroni:tll: unknown key (typo?); known keys here: ")
    assert "pgha:patorni: unknown key (typo?)" in found[1]
    assert found[2] == "pgha:lookup:etcd: must be a map (got 'etcd-server')"
    assert len(found) == 3  # postgresql:parameters is the operator's own map


def test_problems_keeps_checking_with_the_defaults_where_a_section_is_not_a_map():
    merged = dict(DEFAULTS, haproxy="*:5432")
    found = schema.problems(merged, {"haproxy": "*:5432"}, DEFAULTS)
    assert found == ["pgha:haproxy: must be a map (got '*:5432')"]


def test_problems_runs_the_rules_with_their_context_and_drops_repeats():
    seen = {}

    def rule(cfg, **context):
        seen.update(context)
        return ["pgha:x: twice", "pgha:x: twice"]

    assert schema.problems(DEFAULTS, {}, DEFAULTS, (rule,), modes=["stop"]) == ["pgha:x: twice"]
    assert seen == {"modes": ["stop"]}


def test_retired_keys_say_what_became_of_them():
    assert schema.problems(DEFAULTS, {"lab": True}, DEFAULTS)[0].startswith("pgha:lab: removed:")
