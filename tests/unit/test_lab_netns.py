"""
The namespaced lab (lab/netns.py, pillar/pgha/lab_netns.sls): each host's
address on the lab's own network, clear refusals of addresses that cannot
be, the layout a lab keeps, and the move of a loopback lab. Making the
namespaces needs root and the lab's machine: `make lab` does it.
"""

from __future__ import annotations

import os

import pytest
import yaml
from pgha_test_helpers import REPO

from lab import config, netns


def test_every_loopback_host_has_its_namespaced_address_and_the_roles_stay():
    loopback, namespaced = config.lab_nodes(network="loopback"), config.lab_nodes(network="netns")
    assert set(loopback) == set(namespaced)
    for node_id, node in loopback.items():
        assert node["address"].startswith("127.0.0.")
        assert namespaced[node_id]["address"] == netns.lab_address(node["address"])
        assert namespaced[node_id]["roles"] == node["roles"]
    netns.check_nodes(namespaced)  # no refusal
    ha = config.lab_nodes(topology="ha", network="netns")
    assert {n: s["address"] for n, s in ha.items()} == {n: s["address"] for n, s in namespaced.items()}


def test_the_namespaced_pillar_moves_every_address_and_the_client_networks():
    with open(os.path.join(REPO, "pillar", "pgha", "lab_netns.sls"), encoding="utf-8") as handle:
        overlay = yaml.safe_load(handle)["pgha"]
    with open(os.path.join(REPO, "pillar", "pgha", "lab.sls"), encoding="utf-8") as handle:
        text = handle.read()
    merged = config.merged(yaml.safe_load(text)["pgha"], overlay)
    loopback_values = [value for value in yaml.safe_dump(merged).split() if "127.0.0." in value]
    assert loopback_values == [], "a loopback address left in the namespaced lab's pillar"
    assert merged["postgresql"]["client_networks"] == [f"{netns.GATEWAY}/32"]  # the master, the drills' client


@pytest.mark.parametrize("address, problem", [
    ("127.0.0.40", "must be a host of the namespaced lab's network 198.18.0.0/24"),
    ("198.18.0.1", "other than 198.18.0.1"),
    ("198.18.1.4", "must be a host of the namespaced lab's network"),
    ("postgres04.lan", "is not an IPv4 address"),
])
def test_a_node_outside_the_lab_network_is_refused_by_name(address, problem):
    nodes = dict(config.lab_nodes(network="netns"), postgres04={"address": address, "roles": ["postgresql"]})
    with pytest.raises(SystemExit, match=f"pgha:nodes:postgres04:address: .*{problem}"):
        netns.check_nodes(nodes)


def test_two_nodes_on_one_address_are_refused():
    nodes = dict(config.lab_nodes(network="netns"), postgres04={"address": "198.18.0.15", "roles": ["postgresql"]})
    with pytest.raises(SystemExit, match="postgres04:address: 198.18.0.15 is postgres01's too"):
        netns.check_nodes(nodes)


def test_names_fit_the_kernel_and_commands_run_inside_the_host():
    assert netns.veth("198.18.0.254") == "pgv254" and len(netns.veth("198.18.0.254")) <= 15
    assert netns.namespace("postgres01") == "pgha-postgres01"
    assert netns.wrap("etcd", ["salt-minion", "-d"]) == ["ip", "netns", "exec", "pgha-etcd", "salt-minion", "-d"]
    assert netns.lab_address("127.0.0.40") == "198.18.0.40" and netns.lab_address("198.18.0.7") == "198.18.0.7"
    with pytest.raises(ValueError):
        netns.lab_address("10.131.0.4")


def test_a_new_lab_is_namespaced_an_old_one_moves_and_a_made_one_keeps_its_layout(tmp_path):
    lab = str(tmp_path / "lab")
    assert config.recorded_network(lab) is None and config.network(lab) == "netns"
    os.makedirs(os.path.join(lab, "hosts", "postgres01"))  # a lab made before the layouts were recorded
    assert config.recorded_network(lab) == "loopback" and config.network(lab) == "netns"
    config.write(os.path.join(lab, "network"), "loopback\n")
    assert config.network(lab) == "loopback" and config.network(lab, "netns") == "netns"
    with pytest.raises(SystemExit, match="LAB_NETWORK must be one of netns, loopback"):
        config.network(lab, "bridge")


def test_the_namespaced_lab_stacks_its_pillar_and_gives_the_hosts_wheels(tmp_path):
    files = config.pillar_files(str(tmp_path / "{id}"), str(tmp_path / "reports"), network="netns", topology="ha")
    top = yaml.safe_load(files["top.sls"].split("\n", 1)[1])["base"]
    assert top["*"] == ["pgha.lab", "pgha.lab_ha", "pgha.lab_netns", "nodes", "lab_local"]
    local = yaml.safe_load(files["lab_local.sls"])["pgha"]
    assert local["lookup"]["patroni"]["pip"]["wheel_dir"] == config.WHEEL_DIR
    loopback = yaml.safe_load(config.pillar_files(str(tmp_path / "{id}"), str(tmp_path / "r"))["lab_local.sls"])
    assert "patroni" not in loopback["pgha"]["lookup"]


def test_master_listens_on_the_bridge_and_minions_find_it_there():
    master = yaml.safe_load(config.master_config("/lab/.lab", "/lab", interface=netns.GATEWAY))
    minion = yaml.safe_load(config.minion_config("/lab/.lab", "etcd", master=netns.GATEWAY))
    assert master["interface"] == minion["master"] == "198.18.0.1"
