"""
Unit tests of the formula's alert rules (salt/pgha/monitor/files/
pgha.rules.yml.jinja), rendered with a real model of a cluster and proven
with Prometheus's own `promtool test rules` (tests/unit/alert_rules.test.yml):
every alert fires on its fault and stays silent otherwise. Also: every
alert has both cases in that file, the rules use Patroni 4's metric names,
and the rules that depend on a feature are gone with the feature.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import jinja2
import pytest
import yaml
from pgha_test_helpers import SALT_DIR, TEST_SECRETS, load

PROMTOOL = pathlib.Path("/usr/bin/promtool")
if not PROMTOOL.is_file():
    pytest.skip(f"{PROMTOOL} is missing: `make deps` installs it (Debian's package prometheus)",
                allow_module_level=True)

model = load("_utils", "pgha_model")
DEFAULTS = model.defaults_in([str(SALT_DIR)])
TEMPLATE = SALT_DIR / "pgha" / "monitor" / "files" / "pgha.rules.yml.jinja"
TESTS = pathlib.Path(__file__).with_name("alert_rules.test.yml")
MONITOR = "monitor"
# Alerts that exist only with a feature: synchronous mode, the pooler, the backup node.
FEATURE_ALERTS = {"PatroniSyncStandbyMissing", "PgBouncerClientsWaiting", "PgBouncerExporterDown",
                  "ArchivingFailing", "BackupTooOld", "BackupAgeUnknown"}


def pillar(sync: bool = True, pooler: bool = True, backup: bool = True) -> dict:
    """The cluster the test file's series describe; the rules' bounds fixed, as alert_rules.test.yml reads them."""
    nodes = {
        "postgres01": {"address": "10.0.0.15", "roles": ["postgresql"]},
        "postgres02": {"address": "10.0.0.32", "roles": ["postgresql"]},
        "postgres03": {"address": "10.0.0.6", "roles": ["postgresql"]},
        "etcd": {"address": "10.0.0.5", "roles": ["etcd"]},
        "haproxy": {"address": "10.0.0.3", "roles": ["haproxy"]},
        "backup": {"address": "10.0.0.9", "roles": ["backup"]},
        "monitor": {"address": "10.0.0.10", "roles": ["monitor"]},
    }
    if not backup:
        del nodes["backup"]
    return {
        "nodes": nodes,
        "pgbouncer": {"enabled": pooler},
        "patroni": {"synchronous_mode": sync, "ttl": 30},
        "monitor": {"rules": {"pending": "1m", "max_lag_bytes": 1048576, "max_lag_s": 60,
                              "leader_change_window": "10m", "pooler_waiting_clients": 0}},
        "backup": {"max_age_hours": 24},
        "secrets": dict(TEST_SECRETS),
    }


def render(given: dict) -> str:
    """pgha.rules.yml as the monitor node's state renders it, map.jinja standing in with the model's map."""
    mapdata = model.build(DEFAULTS, given, MONITOR).as_map()
    env = jinja2.Environment(loader=jinja2.DictLoader({
        "pgha.rules.yml.jinja": TEMPLATE.read_text(),
        "pgha/map.jinja": "{%- set mapdata = test_mapdata -%}",
    }))
    return env.get_template("pgha.rules.yml.jinja").render(tplroot="pgha", test_mapdata=mapdata)


def rules_of(text: str) -> list[dict]:
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


def promtool(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def rendered() -> str:
    return render(pillar())


def test_the_test_pillar_is_the_cluster_the_test_file_describes():
    cluster = model.build(DEFAULTS, pillar(), MONITOR).as_map()
    rules = cluster["monitor"]["rules"]
    assert (rules["pending"], rules["max_lag_bytes"], rules["max_lag_s"], rules["leader_change_window"],
            rules["pooler_waiting_clients"]) == ("1m", 1048576, 60, "10m", 0)
    assert cluster["patroni"]["ttl"] == 30 and cluster["patroni"]["synchronous_mode"] is True
    assert cluster["backup"]["enabled"] and cluster["backup"]["max_age_s"] == 86400
    assert cluster["pgbouncer"]["enabled"]
    assert cluster["haproxy"]["listeners"][0]["name"] == "postgres"
    jobs = {job["job"]: job["targets"] for job in cluster["monitor"]["jobs"]}
    assert {"node": "postgres01", "target": "10.0.0.15:8008"} in jobs["patroni"]
    assert jobs["pgbouncer"] == [{"node": "haproxy", "target": "10.0.0.3:9127"}]


def test_promtool_proves_every_alert(rendered, tmp_path):
    (tmp_path / "pgha.rules.yml").write_text(rendered)
    shutil.copy(TESTS, tmp_path / TESTS.name)
    result = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}\n{result.stderr}"


def test_every_alert_has_a_firing_and_a_silent_case(rendered):
    alerts = {rule["alert"] for rule in rules_of(rendered)}
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - silent == set(), "alerts never shown silent"
    # and the file tests no alert the rules do not have
    assert (firing | silent) - alerts == set()


def test_the_rules_are_many_and_use_patroni_4_metric_names(rendered):
    rules = rules_of(rendered)
    assert len(rules) >= 15
    assert all("alert" in rule and "expr" in rule and rule["annotations"]["summary"] for rule in rules)
    assert len({rule["alert"] for rule in rules}) == len(rules)
    assert not [rule["alert"] for rule in rules if "patroni_master" in rule["expr"]]


def test_alerts_of_features_off_are_gone_and_the_rest_still_checks(tmp_path):
    rendered = render(pillar(sync=False, pooler=False, backup=False))
    alerts = {rule["alert"] for rule in rules_of(rendered)}
    assert alerts.isdisjoint({"PatroniSyncStandbyMissing", "PgBouncerClientsWaiting", "ArchivingFailing",
                              "BackupTooOld"})
    assert alerts.isdisjoint(FEATURE_ALERTS)
    assert alerts == {rule["alert"] for rule in rules_of(render(pillar()))} - FEATURE_ALERTS
    (tmp_path / "pgha.rules.yml").write_text(rendered)
    result = promtool("check", "rules", "pgha.rules.yml", cwd=tmp_path)
    assert result.returncode == 0, f"promtool check rules failed:\n{result.stdout}\n{result.stderr}"
