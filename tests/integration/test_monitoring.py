"""
Monitoring on the test cluster's monitor host: every scrape target up, the
formula's rules loaded, and no rule reading a metric that no target
exports (each rule's metric names against what Prometheus scraped).
"""

from __future__ import annotations

import json
import re
import urllib.request

from conftest import ADDRESSES, state_result

PROMETHEUS = f"http://{ADDRESSES['monitor']}:9090"
# PromQL words that are not metric names.
KEYWORDS = {"and", "or", "unless", "on", "ignoring", "group_left", "group_right", "by", "without", "offset", "bool",
            "inf", "nan"}
# Metrics Prometheus makes itself rather than a target.
SYNTHETIC = {"up"}


def get(path: str) -> dict:
    with urllib.request.urlopen(PROMETHEUS + path, timeout=10) as answer:
        return json.loads(answer.read().decode())["data"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: label matchers, grouping labels, ranges and functions left out."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text))
    return {name for name in names if name.lower() not in KEYWORDS}


def test_the_gate_found_every_target_up(orchestration):
    gate = state_result(orchestration, "pgha-orch-monitor-targets-up")["changes"]["return"]
    assert gate["ok"] is True, gate["problems"]
    active = get("/api/v1/targets?state=active")["activeTargets"]
    assert len(active) == gate["targets"] >= 16  # 3 patroni, 1 etcd, 3 postgres, haproxy, pgbouncer, 7 nodes
    assert {t["labels"]["job"] for t in active} == {"patroni", "etcd", "postgres", "haproxy", "pgbouncer", "node"}
    assert all(t["health"] == "up" for t in active), [(t["scrapeUrl"], t["lastError"]) for t in active
                                                      if t["health"] != "up"]
    # Patroni's and etcd's over https, verified with the CA
    assert all(t["scrapeUrl"].startswith("https://") for t in active if t["labels"]["job"] in ("patroni", "etcd"))


def test_no_rule_reads_a_metric_no_target_exports(orchestration):
    groups = get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 15
    exported = set(get("/api/v1/label/__name__/values"))
    missing = {rule["name"]: sorted(metric_names(rule["query"]) - exported - SYNTHETIC) for rule in rules}
    assert not {name: names for name, names in missing.items() if names}, missing
    assert "patroni_primary" in exported and "patroni_master" not in exported


def test_metric_names_of_an_expression():
    expr = ('max by (scope) (patroni_xlog_location and on (scope, name) patroni_primary == 1) - on (scope) '
            'group_right () (patroni_xlog_replayed_location{job="patroni"}[5m]) > 16')
    assert metric_names(expr) == {"patroni_xlog_location", "patroni_primary", "patroni_xlog_replayed_location"}
