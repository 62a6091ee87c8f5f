"""
The alerts as Alertmanager has them, for the runner: what fires now
(``pgha.status``, ``pgha.alerts``), Prometheus's targets (the
orchestration's gate, ``pgha.monitor_ready``), and the drill's watch of the
alert its mode expects (``Watch``): when it fired and when it resolved,
measured from the fault, by polling Alertmanager's API (``/api/v2/alerts``,
which lists the active alerts only). Plain Python on the standard library;
reached as ``__utils__["pgha_alerts.<name>"]``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

POLL_S = 0.25
HTTP_TIMEOUT_S = 3.0


class MonitorError(RuntimeError):
    """Prometheus or Alertmanager did not answer as expected."""


def get_json(url: str, timeout: float = HTTP_TIMEOUT_S) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return json.loads(answer.read().decode())
    except (OSError, ValueError, urllib.error.URLError) as exc:
        raise MonitorError(f"{url}: {exc}") from None


def firing(alertmanager_url: str, get: Callable[[str], Any] = get_json) -> list[dict]:
    """The alerts active now (not silenced, not inhibited): name, severity, labels of note, since when."""
    alerts = get(f"{alertmanager_url}/api/v2/alerts?active=true&silenced=false&inhibited=false")
    out = []
    for alert in alerts if isinstance(alerts, list) else []:
        labels = alert.get("labels") or {}
        out.append({"alert": labels.get("alertname"), "severity": labels.get("severity"),
                    "on": labels.get("name") or labels.get("node") or labels.get("instance") or labels.get("scope"),
                    "since": alert.get("startsAt"),
                    "summary": (alert.get("annotations") or {}).get("summary")})
    return sorted(out, key=lambda a: (str(a["alert"]), str(a["on"])))


def targets(prometheus_url: str, get: Callable[[str], Any] = get_json) -> list[dict]:
    """Prometheus's active targets: job, instance, health, last error."""
    answer = get(f"{prometheus_url}/api/v1/targets?state=active")
    active = ((answer or {}).get("data") or {}).get("activeTargets") or []
    return sorted(({"job": t.get("labels", {}).get("job"), "instance": t.get("labels", {}).get("instance"),
                    "node": t.get("labels", {}).get("node"), "health": t.get("health"),
                    "error": t.get("lastError") or None} for t in active),
                  key=lambda t: (str(t["job"]), str(t["instance"])))


def targets_problems(found: list[dict], jobs: list[dict]) -> list[str]:
    """What keeps ``found`` (``targets``) from being every target of ``jobs`` (the model's), each up."""
    problems = []
    seen = {(t["job"], t["instance"]): t for t in found}
    for job in jobs:
        for target in job["targets"]:
            got = seen.get((job["job"], target["target"]))
            if got is None:
                problems.append(f"{job['job']} {target['target']} ({target['node']}): not a target of Prometheus")
            elif got["health"] != "up":
                problems.append(f"{job['job']} {target['target']} ({target['node']}): {got['health']}"
                                + (f", {got['error']}" if got["error"] else ""))
    return problems


def check_targets(prometheus_url: str, jobs: list[dict], get: Callable[[str], Any] = get_json) -> tuple[list, list]:
    """Prometheus's targets now, and ``targets_problems`` (or that Prometheus does not answer)."""
    try:
        found = targets(prometheus_url, get)
    except MonitorError as exc:
        return [], [str(exc)]
    return found, targets_problems(found, jobs)


class Watch(threading.Thread):
    """
    Polls Alertmanager every ``POLL_S`` from the moment it starts: the first
    time each alert was seen active, and for ``expected`` when it fired
    after ``arm()`` and when it was gone again after firing.
    """

    def __init__(self, alertmanager_url: str, expected: str, get: Callable[[str], Any] = get_json):
        super().__init__(daemon=True)
        self.url, self.expected, self.get = alertmanager_url, expected, get
        self.stopping = threading.Event()
        self.armed_at: float | None = None
        self.fired_at: float | None = None
        self.resolved_at: float | None = None
        self.first_seen: dict[str, float] = {}
        self.active: set[str] = set()
        self.last_ok = False
        self.last_error: str | None = None

    def arm(self) -> None:
        """From now on, the expected alert's firing counts (before, it may still be firing from earlier)."""
        self.armed_at = time.time()

    def look(self) -> None:
        try:
            names = {a["alert"] for a in firing(self.url, self.get)}
        except MonitorError as exc:
            self.last_ok, self.last_error = False, str(exc)
            return
        now = time.time()
        self.active = names
        self.last_ok = True  # after active: a reader that sees last_ok sees this answer
        if self.armed_at is None:
            return
        for name in names:
            self.first_seen.setdefault(name, now)
        if self.expected in names and self.fired_at is None:
            self.fired_at = now
        elif self.expected not in names and self.fired_at is not None and self.resolved_at is None:
            self.resolved_at = now

    def run(self) -> None:
        while not self.stopping.is_set():
            self.look()
            self.stopping.wait(POLL_S)

    def wait(self, done: Callable[[], bool], deadline: float) -> bool:
        """Until ``done()`` or the deadline (time.time()); whether it was done."""
        while time.time() < deadline:
            if done():
                return True
            time.sleep(POLL_S)
        return done()


def watched(cluster: Any, mode: str, drill: Callable[[], dict], expected_of: dict, required: tuple,
            get: Callable[[str], Any] = get_json) -> dict:
    """
    ``drill()`` run under a ``Watch`` of the alert ``mode`` expects (none:
    monitoring off, or no expectation): the expected alert quiet first,
    then ``alert_s`` (fired after the fault) and ``alert_resolved_s`` (gone
    after firing, the cluster healed), each within the drill's
    ``alert_timeout``, added to the report (``alert_s`` and
    ``alert_resolved_s``, the marks ``alert`` and ``alert_resolved``, every
    alert seen in ``alerts_seen``); in the ``required`` modes a missing
    one is a problem that makes the drill not ok. An alert still firing
    from before after ``alert_timeout`` is not measured (``alert_note``).
    """
    expected = expected_of.get(mode)
    url = cluster.monitor.alertmanager_url
    if not (cluster.monitor.enabled and url and expected):
        return drill()
    watch = Watch(url, expected, get)
    watch.start()
    timeout = float(cluster.drill.alert_timeout)
    quiet = watch.wait(lambda: watch.last_ok and expected not in watch.active, time.time() + timeout)
    watch.arm()
    result = drill()
    fault = (result.get("marks") or {}).get("fault")
    if fault:
        watch.wait(lambda: watch.resolved_at is not None, fault + timeout)
    watch.stopping.set()
    watch.join(5)
    _report(result, watch, fault, quiet, mode in required, timeout)
    return result


def _report(result: dict, watch: Watch, fault: float | None, quiet: bool, required: bool, timeout: float) -> None:
    def since(moment: float | None) -> float | None:
        return round(moment - fault, 3) if moment is not None and fault else None

    result.update(alert=watch.expected, alert_s=since(watch.fired_at), alert_resolved_s=since(watch.resolved_at),
                  alerts_seen={name: since(at) for name, at in sorted(watch.first_seen.items(), key=lambda i: i[1])})
    marks = result.setdefault("marks", {})
    for name, moment in (("alert", watch.fired_at), ("alert_resolved", watch.resolved_at)):
        if moment is not None:
            marks[name] = moment
    if not quiet:
        # firing since before the fault (an earlier change within its window): a new firing cannot be told apart
        result.update(alert_s=None, alert_resolved_s=None,
                      alert_note=f"{watch.expected} was firing before the fault and still {timeout:.0f} s later "
                                 "(an earlier leader change within monitor:rules:leader_change_window, or "
                                 f"Alertmanager unreadable: {watch.last_error}); not measured")
        return
    if not required or not fault:
        return
    problems = result.setdefault("problems", [])
    if watch.fired_at is None:
        problems.append(f"the expected alert {watch.expected} did not fire within {timeout:.0f} s of the fault"
                        + (f" (Alertmanager: {watch.last_error})" if watch.last_error else ""))
    elif watch.resolved_at is None:
        problems.append(f"the alert {watch.expected} did not resolve within {timeout:.0f} s of the fault")
    result["ok"] = not problems
