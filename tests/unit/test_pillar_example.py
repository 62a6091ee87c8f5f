"""
pillar.example documents every key of the pgha pillar with its default: it is made by `make docs`
from salt/pgha/parameters/defaults.yaml (comments and all), with the recipe's five hosts as nodes.
"""

import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as handle:
        return handle.read()


def test_pillar_example_matches_the_defaults():
    example = load("pillar.example")["pgha"]
    defaults = load("salt/pgha/parameters/defaults.yaml")
    assert example.pop("nodes")
    defaults.pop("nodes")
    assert example == defaults


def test_pillar_example_nodes_are_the_recipes_five_hosts_a_backup_and_a_monitor_host():
    nodes = load("pillar.example")["pgha"]["nodes"]
    assert sorted(nodes) == ["backup", "etcd", "haproxy", "monitor", "postgres01", "postgres02", "postgres03"]
    assert nodes["backup"]["roles"] == ["backup"] and nodes["monitor"]["roles"] == ["monitor"]
    assert all(node["address"].startswith("10.131.0.") for node in nodes.values())
    assert nodes == load("pillar/pgha/production.sls")["pgha"]["nodes"]


def test_pillar_example_keeps_every_comment_of_the_defaults():
    """Each comment line of defaults.yaml (after its header) is in pillar.example, in the same order."""
    defaults = read("salt/pgha/parameters/defaults.yaml").split("\n---\n", 1)[1]
    comments = [line.strip() for line in defaults.splitlines() if line.strip().startswith("#")]
    example = [line.strip() for line in read("pillar.example").split("\n---\n", 1)[1].splitlines()
               if line.strip().startswith("#")]
    assert example == comments
