"""
Unit tests of monitoring's model (_utils/pgha_monitoring.py: on or off, its
rules between keys, the scrape jobs) and of the runner's reading of
Alertmanager and Prometheus (_utils/pgha_alerts.py: the alerts firing, the
targets' problems, the drill's watch of its expected alert).
"""

from __future__ import annotations

import copy
import time

import pytest
from pgha_test_helpers import TEST_SECRETS, defaults, load, production_given

model = load("_utils", "pgha_model")
monitoring = load("_utils", "pgha_monitoring")
alerts = load("_utils", "pgha_alerts")
DEFAULTS = defaults()


@pytest.fixture
def given() -> dict:
    return production_given()


def errors(given: dict) -> list[str]:
    return model.check(DEFAULTS, given, "pgha-master", secrets_of="all")


def test_the_production_example_monitors_every_target(given):
    cluster = model.build(DEFAULTS, given, "monitor")
    assert cluster.roles == ("monitor",)
    assert cluster.monitor.enabled and cluster.monitor.node == "monitor"
    assert cluster.monitor.prometheus_url == "http://10.131.0.10:9090"
    assert cluster.monitor.alertmanager_url == "http://10.131.0.10:9093"
    jobs = {job["job"]: job for job in cluster.monitor.jobs}
    assert sorted(jobs) == ["etcd", "haproxy", "node", "patroni", "postgres"]  # the pooler is off there
    assert jobs["patroni"]["scheme"] == "https" and jobs["patroni"]["ca"] == "postgresql"
    assert [t["target"] for t in jobs["patroni"]["targets"]] == ["10.131.0.15:8008", "10.131.0.32:8008",
                                                                 "10.131.0.6:8008"]
    assert jobs["etcd"]["targets"] == [{"node": "etcd", "target": "10.131.0.5:2379"}]
    # monitor:tls on (the example's): the node exporter and postgres_exporter over https, verified with its CA
    assert (jobs["node"]["scheme"], jobs["node"]["ca"]) == (jobs["postgres"]["scheme"], jobs["postgres"]["ca"]) == (
        "https", "monitor")
    assert jobs["haproxy"]["scheme"] == "http"
    assert jobs["haproxy"]["targets"] == [{"node": "haproxy", "target": "10.131.0.3:8405"}]
    assert len(jobs["node"]["targets"]) == len(cluster.nodes) == 7
    # a scrape never outlasts its interval
    assert cluster.as_map()["monitor"]["scrape_timeout"] == "10s"


def test_the_exporters_over_http_with_monitor_tls_off(given):
    given["monitor"]["tls"] = {"enabled": False}
    jobs = {job["job"]: job for job in model.build(DEFAULTS, given, "monitor").monitor.jobs}
    assert (jobs["node"]["scheme"], jobs["node"]["ca"]) == ("http", None)


def test_the_pooler_adds_its_exporter_and_short_intervals_bound_the_timeout(given):
    given["pgbouncer"] = {"enabled": True}
    given["monitor"] = dict(given.get("monitor") or {}, scrape_interval="2s")
    cluster = model.build(DEFAULTS, given, "haproxy")
    jobs = {job["job"]: job for job in cluster.monitor.jobs}
    assert jobs["pgbouncer"]["targets"] == [{"node": "haproxy", "target": "10.131.0.3:9127"}]
    # the exporters each host runs (its states and its clean)
    assert cluster.as_map()["monitor"]["exporters_here"] == ["node_exporter", "pgbouncer_exporter"]
    assert model.build(DEFAULTS, given, "postgres01").as_map()["monitor"]["exporters_here"] == [
        "node_exporter", "postgres_exporter"]
    assert cluster.as_map()["monitor"]["scrape_timeout"] == "2s"


def test_monitoring_off_without_a_monitor_node_on_with_the_switch(given):
    del given["nodes"]["monitor"]
    cluster = model.build(DEFAULTS, given, "postgres01")
    assert not cluster.monitor.enabled and cluster.monitor.jobs == [] and cluster.monitor.prometheus_url is None
    given["monitor"] = dict(given.get("monitor") or {}, exporters=True)
    cluster = model.build(DEFAULTS, given, "postgres01")
    assert cluster.monitor.enabled and cluster.monitor.node is None and cluster.monitor.jobs
    assert cluster.monitor.alertmanager_url is None  # the drill reads no alert then


def test_one_monitor_node_and_no_contradiction(given):
    given["nodes"]["monitor2"] = {"address": "10.131.0.11", "roles": ["monitor"]}
    assert any("2 nodes have the role monitor (monitor, monitor2)" in e for e in errors(given))
    del given["nodes"]["monitor2"]
    given["monitor"] = dict(given.get("monitor") or {}, exporters=False)
    assert any(e.startswith("pgha:monitor:exporters: false, but monitor has the role monitor") for e in errors(given))


def test_alertmanager_receivers_named_by_the_route(given):
    given["monitor"]["alertmanager"]["route"]["receiver"] = "pager"
    found = errors(given)
    assert any(e.startswith("pgha:monitor:alertmanager:route:receiver: 'pager' is not among the receivers") for e in found)
    given["monitor"]["alertmanager"]["route"] = {"receiver": "dba-webhook",
                                                 "routes": [{"matchers": ["severity=critical"], "receiver": "x"}]}
    assert any(e.startswith("pgha:monitor:alertmanager:route:routes:0:receiver: 'x'") for e in errors(given))
    given["monitor"]["alertmanager"]["receivers"] = [{"webhook_configs": []}]
    assert "pgha:monitor:alertmanager:receivers:0: must be a map with a name" in errors(given)


def test_ports_and_durations_checked(given):
    given["monitor"]["ports"] = {"node_exporter": 8008}
    given["monitor"]["scrape_interval"] = "fast"
    found = errors(given)
    assert "pgha:monitor:ports:node_exporter: 8008 is the Patroni REST API's port too" in found
    assert any(e.startswith("pgha:monitor:scrape_interval: must be a Prometheus duration") for e in found)


def test_the_monitoring_password_required_only_with_monitoring(given):
    secrets = dict(TEST_SECRETS)
    del secrets["monitor_password"]
    given["secrets"] = secrets
    assert "pgha:secrets:monitor_password: required, must be a non-empty string" in errors(given)
    del given["nodes"]["monitor"]
    assert errors(given) == []


# ---------------------------------------------------------------------------
# Alertmanager and Prometheus as the runner reads them
# ---------------------------------------------------------------------------

def _alert(alertname: str, **labels: str) -> dict:
    return {"labels": dict(labels, alertname=alertname, severity="warning"), "startsAt": "2026-12-04T20:00:00Z",
            "annotations": {"summary": f"{alertname} summary"}}


def test_firing_lists_the_active_alerts():
    seen = []

    def get(url):
        seen.append(url)
        return [_alert("PatroniMemberDown", node="postgres01", name="postgres01"), _alert("EtcdNoLeader", node="etcd")]

    found = alerts.firing("http://am:9093", get)
    assert seen == ["http://am:9093/api/v2/alerts?active=true&silenced=false&inhibited=false"]
    assert [(a["alert"], a["on"]) for a in found] == [("EtcdNoLeader", "etcd"), ("PatroniMemberDown", "postgres01")]


def test_targets_problems_name_the_missing_and_the_down():
    jobs = [{"job": "node", "targets": [{"node": "a", "target": "10.0.0.1:9100"}, {"node": "b", "target": "10.0.0.2:9100"},
                                        {"node": "c", "target": "10.0.0.3:9100"}]}]
    answer = {"data": {"activeTargets": [
        {"labels": {"job": "node", "instance": "10.0.0.1:9100", "node": "a"}, "health": "up", "lastError": ""},
        {"labels": {"job": "node", "instance": "10.0.0.2:9100", "node": "b"}, "health": "down",
         "lastError": "connection refused"}]}}
    found = alerts.targets("http://prom:9090", lambda url: answer)
    assert alerts.targets_problems(found, jobs) == [
        "node 10.0.0.2:9100 (b): down, connection refused",
        "node 10.0.0.3:9100 (c): not a target of Prometheus"]
    assert alerts.check_targets("x", jobs, lambda url: answer)[1] == alerts.targets_problems(found, jobs)

    def refused(url):
        raise alerts.MonitorError(f"{url}: connection refused")

    assert alerts.check_targets("http://prom:9090", jobs, refused) == (
        [], ["http://prom:9090/api/v1/targets?state=active: connection refused"])
    answer["data"]["activeTargets"][1]["health"] = "up"
    answer["data"]["activeTargets"].append({"labels": {"job": "node", "instance": "10.0.0.3:9100"}, "health": "up"})
    assert alerts.targets_problems(alerts.targets("x", lambda url: answer), jobs) == []


class _Cluster:
    def __init__(self, url="http://am:9093", timeout=3):
        self.monitor = model.Monitor(True, "monitor", "http://prom:9090", url, [])
        self.drill = type("D", (), {"alert_timeout": timeout})()


class _Alertmanager:
    """
    Answers with the alerts a script of (seconds since it began, names) says
    are active; each step is answered at least once before the next, so a
    slow watch on a loaded machine still sees every step. ``then(script)``
    starts a new script from now (the drill's own change).
    """

    def __init__(self, script):
        self.then(script)

    def then(self, script):
        self.start, self.script, self.step = time.time(), script, 0

    def __call__(self, url):
        now = time.time() - self.start
        due = max(i for i, (at, _) in enumerate(self.script) if now >= at)
        self.step = min(due, self.step + 1) if self.step < due else self.step
        return [_alert(name) for name in self.script[self.step][1]]


def _drill(fake=None, script=None):
    def drill():
        fault = time.time()
        if fake is not None:
            fake.then(script)
        return {"ok": True, "problems": [], "marks": {"fault": fault}}
    return drill


def test_the_drill_measures_its_alert_firing_and_resolving(monkeypatch):
    monkeypatch.setattr(alerts, "POLL_S", 0.02)
    fake = _Alertmanager([(0, [])])
    drill = _drill(fake, [(0, []), (0.3, ["PatroniLeaderChanged", "PatroniMemberDown"]), (0.6, [])])
    result = alerts.watched(_Cluster(), "stop", drill, monitoring.EXPECTED, monitoring.REQUIRED, fake)
    assert result["ok"] and result["alert"] == "PatroniLeaderChanged"
    assert 0.3 <= result["alert_s"] < result["alert_resolved_s"] and result["alert_resolved_s"] >= 0.6
    assert set(result["alerts_seen"]) == {"PatroniLeaderChanged", "PatroniMemberDown"}
    assert result["marks"]["alert"] < result["marks"]["alert_resolved"]


def test_the_drill_fails_when_the_alert_never_fires_in_a_mode_that_moves_the_leader(monkeypatch):
    monkeypatch.setattr(alerts, "POLL_S", 0.02)
    fake = _Alertmanager([(0, [])])
    result = alerts.watched(_Cluster(timeout=0.3), "crash", _drill(), monitoring.EXPECTED, monitoring.REQUIRED, fake)
    assert not result["ok"] and result["alert_s"] is None
    assert result["problems"] == ["the expected alert PatroniLeaderChanged did not fire within 0 s of the fault"]
    # a mode whose alert is not required reports it without failing
    result = alerts.watched(_Cluster(timeout=0.3), "dcs-outage", _drill(), monitoring.EXPECTED, monitoring.REQUIRED,
                            fake)
    assert result["ok"] and result["alert"] == "EtcdMemberDown" and result["alert_s"] is None


def test_an_alert_still_firing_from_before_is_waited_out_not_counted(monkeypatch):
    monkeypatch.setattr(alerts, "POLL_S", 0.02)
    # firing from an earlier drill until 0.3 s; the drill's own change raises it again 0.2 s after its fault
    fake = _Alertmanager([(0, ["PatroniLeaderChanged"]), (0.3, [])])
    started = time.time()
    result = alerts.watched(_Cluster(), "switchover", _drill(fake, [(0, []), (0.2, ["PatroniLeaderChanged"]), (0.5, [])]),
                            monitoring.EXPECTED, monitoring.REQUIRED, fake)
    assert result["ok"], result["problems"]
    assert result["marks"]["fault"] - started >= 0.3  # the drill began once the old alert had cleared
    assert result["alert_s"] >= 0.2 and result["alert_resolved_s"] >= 0.5


def test_without_monitoring_the_drill_runs_unwatched():
    cluster = _Cluster(url=None)
    result = alerts.watched(cluster, "stop", lambda: {"ok": True}, monitoring.EXPECTED, monitoring.REQUIRED)
    assert result == {"ok": True}
    assert copy.deepcopy(monitoring.REQUIRED) == ("stop", "crash", "switchover", "freeze", "partition-leader",
                                                  "partition-etcd-minority")


def test_an_alert_firing_from_before_the_whole_wait_is_not_measured_nor_failed(monkeypatch):
    monkeypatch.setattr(alerts, "POLL_S", 0.02)
    fake = _Alertmanager([(0, ["PatroniLeaderChanged"])])  # a change within the window, before this drill
    result = alerts.watched(_Cluster(timeout=0.3), "stop", _drill(), monitoring.EXPECTED, monitoring.REQUIRED, fake)
    assert result["ok"] and result["alert_s"] is None and result["alert_resolved_s"] is None
    assert result["alert_note"].startswith("PatroniLeaderChanged was firing before the fault")
