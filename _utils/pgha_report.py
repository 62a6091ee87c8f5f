"""
A failover drill written down: its report as JSON (every measure, the
cluster before and after, every attempt of the writer) and its timeline as a
picture (acknowledged writes by server, failed attempts, the events), under
the drill's report directory on the master. Plain Python; matplotlib
(optional) draws the picture. Reached as ``__utils__["pgha_report.<function>"]``.
"""

from __future__ import annotations

import json
import os
import time


def write(directory: str, result: dict, records: list[dict], kind: str = "drill", title: str | None = None,
          origin: str = "the fault") -> dict:
    """
    The report and its picture in ``directory`` (``<kind>-<time>-<mode>``);
    a copy of ``result`` with their paths (``report``, ``picture``). The
    failover drill's by default; the restore drill gives its ``kind``,
    ``title`` and the event its times count from.
    """
    marks = result["marks"]
    os.makedirs(directory, mode=0o750, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(marks["fault"]))
    base = os.path.join(directory, f"{kind}-{stamp}-{result['mode']}")
    title = title or f"pgha failover drill: {result['mode']}, leader {result['old_leader']} -> {result.get('leader_after')}"
    result = dict(result, report=base + ".json", picture=draw(base + ".png", records, marks, title, origin))
    with open(base + ".json", "w", encoding="utf-8") as handle:
        json.dump({**result, "records": records}, handle, indent=1, default=str)
    return result


def draw(path: str, records: list[dict], marks: dict, title: str, origin: str = "the fault") -> str | None:
    """The drill's timeline as a picture: acknowledged writes by server, failed attempts, the events."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    start = marks["fault"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    series: dict = {}
    for count, record in enumerate(sorted((r for r in records if r["acked"]), key=lambda r: r["acked"]), start=1):
        xs, ys = series.setdefault(record["server"], ([], []))
        xs.append(record["acked"] - start)
        ys.append(count)
    for server, (xs, ys) in sorted(series.items()):
        ax.plot(xs, ys, ".", markersize=2, label=f"acknowledged on {server}")
    failures = [r["sent"] - start for r in records if r["acked"] is None]
    if failures:
        ax.plot(failures, [0] * len(failures), "|", color="red", label="failed attempt")
    styles = {"fault": "red", "promotion": "orange", "haproxy_switch": "green", "sync_switch": "purple",
              "restore": "grey", "rejoin": "blue", "restore_point": "green", "restored": "teal",
              "alert": "magenta", "alert_resolved": "pink",
              # the timeline's moments (pgha_timeline), each from its own observation
              "old_refusing": "brown", "leader_released": "olive", "leader_taken": "cyan", "promoted": "gold",
              "haproxy_up": "lime", "first_write_haproxy": "black", "first_write_pooler": "slategrey"}
    for name, color in styles.items():
        if marks.get(name):
            ax.axvline(marks[name] - start, color=color, linestyle="--", label=name)
    ax.set_xlabel(f"seconds since {origin}")
    ax.set_ylabel("acknowledged writes")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

