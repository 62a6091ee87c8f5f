"""
The backup schedule (pillar ``pgha:backup:schedule``): calendar expressions
that systemd's timers (``OnCalendar=``) read as they are on real hosts, and
that this module reads the same way for the lab's process manager, which
has no timers: ``python3 pgha_schedule.py run ...`` is the backup node's
schedule program under supervisord.

The forms: ``hourly``, ``daily``, ``weekly``, ``HH:MM`` (every day),
``*:MM`` (every hour) and ``DAYS HH:MM`` where DAYS is a day (``Sun``), a
range (``Mon..Sat``) or a comma list of both (``Mon,Wed..Fri``). Times are
the host's local time, as systemd's are.

Plain Python on the standard library: the model checks the expressions with
``problem`` and derives the backups' allowed age with ``interval``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SHORTHANDS = {"hourly": "*:00", "daily": "00:00", "weekly": "Mon 00:00"}
_TIME = re.compile(r"(\*|[01]\d|2[0-3]):([0-5]\d)")
_DAY_ITEM = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:\.\.(Mon|Tue|Wed|Thu|Fri|Sat|Sun))?")
FORMS = "hourly, daily, weekly, HH:MM, *:MM or 'DAYS HH:MM' with DAYS such as Sun, Mon..Sat or Mon,Wed,Fri"


class Schedule:
    """One calendar expression: on which weekdays (0 = Monday), at which hour (None: every hour) and minute."""

    def __init__(self, days: frozenset, hour: int | None, minute: int):
        self.days, self.hour, self.minute = days, hour, minute

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first time this schedule fires strictly after ``moment`` (naive local time)."""
        start = moment.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        for day in range(8):
            date = (start + datetime.timedelta(days=day)).date()
            if date.weekday() not in self.days:
                continue
            hours = range(24) if self.hour is None else (self.hour,)
            for hour in hours:
                candidate = datetime.datetime.combine(date, datetime.time(hour, self.minute))
                if candidate >= start:
                    return candidate
        raise ValueError("no time in the next eight days")  # cannot happen: every schedule has a day


def parse(expr: Any) -> Schedule:
    """The schedule an expression names; ValueError saying which forms exist."""
    text = expr.strip() if isinstance(expr, str) else ""
    text = SHORTHANDS.get(text, text)
    parts = text.split()
    if not isinstance(expr, str) or len(parts) not in (1, 2):
        raise ValueError(f"must be a calendar expression: {FORMS} (got {expr!r})")
    days = set(range(7))
    if len(parts) == 2:
        days = set()
        for item in parts[0].split(","):
            match = _DAY_ITEM.fullmatch(item)
            if not match:
                raise ValueError(f"{item!r} is not a day or a range of days such as Mon..Sat (got {expr!r})")
            first = DAYS.index(match.group(1))
            last = DAYS.index(match.group(2) or match.group(1))
            if last < first:
                raise ValueError(f"the range {item!r} runs backwards; write it Mon..Sun order (got {expr!r})")
            days.update(range(first, last + 1))
    match = _TIME.fullmatch(parts[-1])
    if not match:
        raise ValueError(f"must be a calendar expression: {FORMS} (got {expr!r})")
    hour = None if match.group(1) == "*" else int(match.group(1))
    if hour is None and len(parts) == 2:
        raise ValueError(f"every hour on some days only is not supported; use *:MM (got {expr!r})")
    return Schedule(frozenset(days), hour, int(match.group(2)))


def problem(expr: Any) -> str | None:
    """What is wrong with an expression (null is fine: that type is not scheduled), or None."""
    if expr is None:
        return None
    try:
        parse(expr)
    except ValueError as exc:
        return str(exc)
    return None


def interval(schedule: dict) -> int | None:
    """The longest gap, in seconds, between two backups of any type the schedule takes; None with none scheduled."""
    parsed = [parse(expr) for expr in schedule.values() if expr is not None]
    if not parsed:
        return None
    moments = sorted({firing for item in parsed for firing in _week_of(item)})
    return max((moments[(i + 1) % len(moments)] - moment) % (7 * 86400) or 7 * 86400
               for i, moment in enumerate(moments))


def _week_of(schedule: Schedule) -> list[int]:
    """The seconds into the week (Monday 00:00) at which ``schedule`` fires."""
    hours = range(24) if schedule.hour is None else (schedule.hour,)
    return [day * 86400 + hour * 3600 + schedule.minute * 60 for day in schedule.days for hour in hours]


# ---------------------------------------------------------------------------
# the schedule program (supervisord): runs the backup script at the times
# ---------------------------------------------------------------------------


def due(schedule: dict, last: dict, now: datetime.datetime) -> list[str]:
    """
    The types due now, biggest first: those whose next firing after their
    last run (after ``now`` less a minute, the first time) has come.
    """
    kinds = []
    for kind in ("full", "diff", "incr"):
        expr = schedule.get(kind)
        if expr is None:
            continue
        since = datetime.datetime.fromisoformat(last[kind]) if kind in last else now - datetime.timedelta(minutes=1)
        if parse(expr).next_after(since) <= now:
            kinds.append(kind)
    return kinds


def run(schedule: dict, script: str, state_file: str, poll_s: float = 20.0) -> None:  # pragma: no cover - a loop
    """Forever: take each backup when it is due (the script's own log says how it went); remember when."""
    last: dict = {}
    if os.path.exists(state_file):
        with open(state_file, encoding="utf-8") as handle:
            last = json.load(handle)
    while True:
        now = datetime.datetime.now()
        kinds = due(schedule, last, now)
        if kinds:
            # the types due at once are one backup, the biggest of them
            kind = kinds[0]
            last.update({name: now.isoformat(timespec="seconds") for name in kinds})
            print(f"{now.isoformat(timespec='seconds')} pgha backup schedule: {kind} due", flush=True)
            ret = subprocess.run([script, kind], check=False)
            print(f"{datetime.datetime.now().isoformat(timespec='seconds')} pgha backup schedule: {kind} "
                  f"exited {ret.returncode}", flush=True)
            os.makedirs(os.path.dirname(state_file), exist_ok=True)
            with open(state_file + ".new", "w", encoding="utf-8") as handle:
                json.dump(last, handle)
            os.replace(state_file + ".new", state_file)
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - the program's entry
    parser = argparse.ArgumentParser(description="pgha's backup schedule, for hosts without systemd timers")
    parser.add_argument("command", choices=["run", "check"])
    parser.add_argument("--script", required=True)
    parser.add_argument("--state-file", required=True)
    for kind in ("full", "diff", "incr"):
        parser.add_argument(f"--{kind}", default=None)
    args = parser.parse_args(argv)
    schedule = {kind: getattr(args, kind) for kind in ("full", "diff", "incr")}
    errors = [f"--{kind}: {problem(expr)}" for kind, expr in schedule.items() if problem(expr)]
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 2
    if args.command == "run":
        run(schedule, args.script, args.state_file)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
