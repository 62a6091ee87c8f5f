"""pillar.example documents every key of the pgha pillar with its default."""

import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_pillar_example_matches_the_defaults():
    example = load("pillar.example")["pgha"]
    defaults = load("salt/pgha/parameters/defaults.yaml")
    assert example.pop("nodes")
    defaults.pop("nodes")
    assert example == defaults


def test_pillar_example_nodes_are_the_recipes_five_hosts():
    nodes = load("pillar.example")["pgha"]["nodes"]
    assert sorted(nodes) == ["etcd", "haproxy", "postgres01", "postgres02", "postgres03"]
    assert all(node["address"].startswith("10.131.0.") for node in nodes.values())
