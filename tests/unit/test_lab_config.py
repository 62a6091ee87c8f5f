"""
The lab's topologies (`make lab`, `make lab TOPOLOGY=ha`): which hosts run
which roles, which pillar files the lab's top stacks, which secrets each
host is given, and that a lab keeps its topology until told another.
"""

from __future__ import annotations

import textwrap

import pytest
import yaml
from pgha_test_helpers import REPO

from lab import config


def test_seed_topology_is_the_recipe_a_backup_host_and_a_monitor_host():
    nodes = config.lab_nodes()
    assert {node: sorted(spec["roles"]) for node, spec in nodes.items()} == {
        "postgres01": ["postgresql"], "postgres02": ["postgresql"], "postgres03": ["postgresql"],
        "etcd": ["etcd"], "haproxy": ["haproxy"], "backup": ["backup"], "monitor": ["monitor"]}


def test_ha_topology_has_three_etcd_members_on_the_same_hosts():
    seed, ha = config.lab_nodes(), config.lab_nodes(topology="ha")
    assert sorted(node for node, spec in ha.items() if "etcd" in spec["roles"]) == ["etcd", "postgres01", "postgres02"]
    assert {node: spec["address"] for node, spec in ha.items()} == {node: spec["address"] for node, spec in seed.items()}
    assert all("postgresql" in ha[node]["roles"] for node in ("postgres01", "postgres02"))


def test_ha_pillar_top_stacks_the_overlay_and_gives_etcd_secrets_to_its_members(tmp_path):
    files = config.pillar_files(str(tmp_path / "{id}"), str(tmp_path / "reports"), topology="ha")
    top = yaml.safe_load(files["top.sls"].split("\n", 1)[1])["base"]
    assert top["*"] == ["pgha.lab", "pgha.lab_ha", "nodes", "lab_local"]
    assert top["etcd,postgres01,postgres02"] == [{"match": "list"}, "pgha.secrets.etcd"]
    assert top["postgres01,postgres02,postgres03"] == [{"match": "list"}, "pgha.secrets.postgresql"]
    assert top["haproxy"] == [{"match": "list"}, "pgha.secrets.haproxy"]


def test_topology_defaults_to_the_seed_and_then_to_what_the_lab_was_made_with(tmp_path):
    assert config.topology(str(tmp_path)) == "seed"
    (tmp_path / "topology").write_text("ha\n")
    assert config.topology(str(tmp_path)) == "ha"
    assert config.topology(str(tmp_path), "ha") == "ha"


def test_a_lab_changes_topology_when_told(tmp_path):
    # seed -> ha on a running lab: the orchestration makes postgres01 and postgres02 etcd members
    (tmp_path / "topology").write_text("seed\n")
    assert config.topology(str(tmp_path), "ha") == "ha"
    (tmp_path / "topology").write_text("ha\n")
    assert config.topology(str(tmp_path), "seed") == "seed"


def test_unknown_topology_named(tmp_path):
    with pytest.raises(SystemExit, match=r"TOPOLOGY must be one of seed, ha \(got 'triple'\)"):
        config.topology(str(tmp_path), "triple")


def test_the_nodes_file_adds_a_node_with_its_secrets(tmp_path):
    nodes_sls = tmp_path / "nodes.sls"
    nodes_sls.write_text(config.NODES_TEMPLATE)  # as `make lab` first writes it: no node
    assert config.lab_nodes(extra_sls=str(nodes_sls)) == config.lab_nodes()
    nodes_sls.write_text("pgha:\n  nodes:\n    postgres04:\n      address: 127.0.0.40\n      roles: [postgresql]\n")
    assert config.lab_nodes(extra_sls=str(nodes_sls))["postgres04"] == {"address": "127.0.0.40", "roles": ["postgresql"]}
    files = config.pillar_files(str(tmp_path / "{id}"), str(tmp_path / "reports"), nodes_sls=str(nodes_sls))
    top = yaml.safe_load(files["top.sls"].split("\n", 1)[1])["base"]
    assert top["postgres01,postgres02,postgres03,postgres04"] == [{"match": "list"}, "pgha.secrets.postgresql"]


def test_a_nodes_file_that_is_not_a_map_is_named(tmp_path):
    nodes_sls = tmp_path / "nodes.sls"
    nodes_sls.write_text("- postgres04\n")
    with pytest.raises(SystemExit, match="nodes.sls must be a YAML map"):
        config.lab_nodes(extra_sls=str(nodes_sls))


def test_the_lab_master_is_the_documented_master_with_the_labs_paths():
    """The documented production master configuration, and the lab's, come from one place: only the paths differ."""
    page = (REPO / "docs" / "how-to" / "production.md").read_text()
    block = page.split("2. Master configuration")[1].split("```yaml\n")[1].split("```")[0]
    documented = yaml.safe_load(textwrap.dedent(block))
    assert documented == yaml.safe_load("\n".join(config.formula_config("/srv/pgha", ["/srv/pgha/pillar"])))
    lab = yaml.safe_load(config.master_config("/lab/.lab", "/lab"))
    assert lab["file_roots"] == {"base": ["/lab/salt"]} and lab["module_dirs"] == ["/lab"]
    assert all(not root.startswith(tuple(lab["file_roots"]["base"])) for root in lab["pillar_roots"]["base"])


def test_the_lab_reads_the_one_model(tmp_path):
    """The lab and the bench read the cluster through pgha_model's build: its topology, nodes file, local pillar."""
    (tmp_path / "pillar").mkdir()
    (tmp_path / "topology").write_text("ha\n")
    (tmp_path / "pillar" / "lab_local.sls").write_text(yaml.safe_dump(
        {"pgha": {"lookup": {"root": "/srv/lab/hosts/{id}"}, "pgbouncer": {"port": 6543}}}))
    (tmp_path / "pillar" / "nodes.sls").write_text(yaml.safe_dump(
        {"pgha": {"nodes": {"postgres04": {"address": "198.18.0.40", "roles": ["postgresql"]}}}}))
    cluster = config.model(str(tmp_path))  # a new lab: namespaced
    assert cluster.etcd_nodes == ("etcd", "postgres01", "postgres02")
    assert cluster.pg_nodes == ("postgres01", "postgres02", "postgres03", "postgres04")
    assert (cluster.haproxy.write_address, cluster.pooler.port) == ("198.18.0.3", 6543)
    assert cluster.address("postgres04") == "198.18.0.40"
    assert cluster.restapi_cafile == f"/srv/lab/hosts/{config.MASTER_ID}/etc/pgha/pki/postgresql-ca.crt"
