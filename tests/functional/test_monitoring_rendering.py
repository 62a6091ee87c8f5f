"""
Monitoring's files rendered by salt-call --local against the production
pillar (its monitor host 10.131.0.10) and checked by the tools of the
versions installed: Prometheus's configuration and rules by promtool,
Alertmanager's by amtool; the exporters' states hold no password where it
would show.
"""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest
import yaml
from pgha_test_helpers import TEST_SECRETS
from test_rendering import (
    SaltEnv,
    salt_root,  # noqa: F401 (the shared fixture, requested by name below)
    shown,
)

PROMTOOL, AMTOOL = "/usr/bin/promtool", "/usr/bin/amtool"
# what the operator's PKI places on each host (the exporters' certificate on every one)
NODES = {"postgres01": ["postgresql"], "postgres02": ["postgresql"], "postgres03": ["postgresql"], "etcd": ["etcd"],
         "haproxy": ["haproxy"], "backup": ["backup"], "monitor": ["monitor"]}


def rendered(env: SaltEnv, template: str, minion_id: str = "monitor") -> str:
    """A template of salt/pgha/monitor/files as the formula renders it (and as the manual tells you to)."""
    proc = env.call("slsutil.renderer", f"salt://pgha/monitor/files/{template}", "default_renderer=jinja",
                    "tplroot=pgha", minion_id=minion_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["local"]


def check(tool: str, *args: str) -> None:
    proc = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def production(tmp_path_factory, salt_root) -> SaltEnv:  # noqa: F811
    env = SaltEnv(tmp_path_factory.mktemp("pgha-monitoring"), ["pgha.production"],
                  {"pgha": {"secrets": TEST_SECRETS}}, salt_root)
    env.place_pki(NODES)
    return env


@pytest.fixture(scope="module")
def exporters_only(tmp_path_factory, salt_root) -> SaltEnv:  # noqa: F811
    """No monitor node: the exporters for a Prometheus of the operator's own (monitor:exporters)."""
    pgha = yaml.safe_load((pathlib.Path(__file__).parents[2] / "pillar" / "pgha" / "production.sls").read_text())["pgha"]
    del pgha["nodes"]["monitor"]
    pgha["monitor"]["exporters"] = True
    env = SaltEnv(tmp_path_factory.mktemp("pgha-exporters-only"), [], {"pgha": dict(pgha, secrets=TEST_SECRETS)},
                  salt_root)
    env.place_pki(NODES)
    return env


def test_prometheus_scrapes_every_target_and_promtool_accepts_it(production, tmp_path):
    text = rendered(production, "prometheus.yml.jinja")
    (tmp_path / "prometheus.yml").write_text(text)
    check(PROMTOOL, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml"))
    config = yaml.safe_load(text)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert sorted(jobs) == ["etcd", "haproxy", "node", "patroni", "postgres"]
    assert jobs["patroni"]["scheme"] == jobs["node"]["scheme"] == jobs["postgres"]["scheme"] == "https"
    assert jobs["haproxy"]["scheme"] == "http"
    assert jobs["node"]["tls_config"]["ca_file"].endswith("/monitor/etc/pgha/pki/monitor-ca.crt")
    assert jobs["patroni"]["tls_config"]["ca_file"].endswith("/monitor/etc/pgha/pki/postgresql-ca.crt")
    assert jobs["etcd"]["tls_config"]["ca_file"].endswith("/monitor/etc/pgha/pki/etcd-ca.crt")
    nodes = {entry["labels"]["node"]: entry["targets"] for entry in jobs["node"]["static_configs"]}
    assert nodes["postgres01"] == ["10.131.0.15:9100"] and len(nodes) == 7
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["10.131.0.10:9093"]
    assert config["global"]["scrape_interval"] == "15s" and config["global"]["scrape_timeout"] == "10s"


def test_the_rules_pass_promtool_and_read_patroni_4(production, tmp_path):
    text = rendered(production, "pgha.rules.yml.jinja")
    (tmp_path / "pgha.rules.yml").write_text(text)
    check(PROMTOOL, "check", "rules", str(tmp_path / "pgha.rules.yml"))
    rules = [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    assert len(rules) >= 15
    expressions = " ".join(rule["expr"] for rule in rules)
    assert "patroni_master" not in expressions and "patroni_primary" in expressions
    # production runs without synchronous replication: no rule waits for a synchronous standby there
    assert "PatroniSyncStandbyMissing" not in {rule["alert"] for rule in rules}


def test_alertmanager_routes_to_the_pillars_receiver_and_amtool_accepts_it(production, tmp_path):
    states = shown(production, "pgha.monitor.alertmanager", "monitor")
    contents = states["pgha-alertmanager-config-file-managed"]["contents"]
    (tmp_path / "alertmanager.yml").write_text(contents)
    check(AMTOOL, "check-config", str(tmp_path / "alertmanager.yml"))
    config = yaml.safe_load(contents)
    assert config["route"]["receiver"] == "dba-webhook"
    assert config["receivers"][0]["webhook_configs"][0]["url"] == "http://10.131.0.10:5001/alerts"
    assert states["pgha-alertmanager-config-file-managed"]["show_changes"] is False
    assert states["pgha-alertmanager-config-file-managed"]["mode"] == "0640"


def test_postgres_exporter_logs_in_as_the_monitoring_role_without_a_password_in_sight(production):
    states = shown(production, "pgha.exporters", "postgres01")
    env_file = states["pgha-postgres-exporter-env-file-managed"]["contents"]
    assert "DATA_SOURCE_URI='10.131.0.15:5432/postgres?sslmode=verify-full&sslrootcert=" in env_file
    assert "DATA_SOURCE_USER='pgha_monitor'" in env_file
    assert "--web.config.file=" in env_file  # https (monitor:tls)
    web = states["pgha-exporters-web-config-file-managed"]["contents"]
    assert yaml.safe_load(web)["tls_server_config"]["key_file"].endswith("/postgres01/etc/pgha/pki/monitor.key")
    assert states["pgha-exporters-tls-key-protected"]["mode"] == "0600"
    assert TEST_SECRETS["monitor_password"] not in env_file
    password = states["pgha-postgres-exporter-password-file-managed"]
    assert password["mode"] == "0600" and password["show_changes"] is False and password["user"] == "prometheus"
    # every host runs the node exporter on its own address; the etcd host no PostgreSQL exporter
    etcd = shown(production, "pgha.exporters", "etcd")
    assert "ARGS=\"--web.listen-address=10.131.0.5:9100" in etcd["pgha-node-exporter-env-file-managed"]["contents"]
    assert "pgha-postgres-exporter-env-file-managed" not in etcd


def test_without_a_monitor_node_the_exporters_run_and_the_scrape_jobs_render_for_your_prometheus(exporters_only,
                                                                                                 tmp_path):
    states = shown(exporters_only, "pgha.exporters", "postgres01")
    assert "pgha-postgres-exporter-env-file-managed" in states
    text = rendered(exporters_only, "prometheus.yml.jinja", minion_id="postgres01")
    (tmp_path / "prometheus.yml").write_text(text)
    check(PROMTOOL, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml"))
    config = yaml.safe_load(text)
    assert "alerting" not in config
    assert {job["job_name"] for job in config["scrape_configs"]} >= {"patroni", "etcd", "postgres", "node"}
