"""
Unit tests of _utils/pgha_schedule.py: the backup schedule's calendar
expressions as systemd's timers read them on real hosts and as the lab's
schedule program reads them (the same forms, the same times), what is
refused and why, the longest gap between two backups (pgha.check's bound),
and which types a minute makes due.
"""

from __future__ import annotations

import datetime

import pytest
from pgha_test_helpers import load

schedule = load("_utils", "pgha_schedule")

SAT_NOON = datetime.datetime(2026, 12, 5, 12, 0)  # a Saturday


@pytest.mark.parametrize(("expr", "after", "expected"), [
    ("hourly", SAT_NOON, datetime.datetime(2026, 12, 5, 13, 0)),
    ("*:30", SAT_NOON, datetime.datetime(2026, 12, 5, 12, 30)),
    ("daily", SAT_NOON, datetime.datetime(2026, 12, 6, 0, 0)),
    ("01:00", SAT_NOON, datetime.datetime(2026, 12, 6, 1, 0)),
    ("weekly", SAT_NOON, datetime.datetime(2026, 12, 7, 0, 0)),  # systemd's weekly: Monday 00:00
    ("Sun 01:00", SAT_NOON, datetime.datetime(2026, 12, 6, 1, 0)),
    ("Mon..Sat 01:00", SAT_NOON, datetime.datetime(2026, 12, 7, 1, 0)),  # no Sunday
    ("Mon,Wed..Fri 23:15", SAT_NOON, datetime.datetime(2026, 12, 7, 23, 15)),
    ("Sat 12:00", SAT_NOON, datetime.datetime(2026, 12, 12, 12, 0)),  # strictly after
])
def test_next_firing_of_each_form(expr, after, expected):
    assert schedule.problem(expr) is None
    assert schedule.parse(expr).next_after(after) == expected


@pytest.mark.parametrize(("expr", "why"), [
    ("Mon..Sat 25:00", "must be a calendar expression"),
    ("Sat..Mon 01:00", "runs backwards"),
    ("Someday 01:00", "is not a day or a range of days"),
    ("Mon *:10", "every hour on some days only is not supported"),
    ("1:00", "must be a calendar expression"),
    ("*-*-* 01:00:00", "is not a day"),
    (15, "must be a calendar expression"),
])
def test_refused_expressions_say_why(expr, why):
    assert why in schedule.problem(expr)


def test_null_is_not_scheduled_and_fine():
    assert schedule.problem(None) is None
    assert schedule.interval({"full": None, "diff": None, "incr": None}) is None


@pytest.mark.parametrize(("entries", "gap_h"), [
    ({"full": "Sun 01:00", "diff": "Mon..Sat 01:00", "incr": "*:30"}, 1),  # the defaults: hourly incrementals
    ({"full": "Sun 01:00", "diff": "Mon..Sat 01:00", "incr": None}, 24),
    ({"full": "Sun 01:00", "diff": "Wed 01:00", "incr": None}, 96),  # Wednesday to Sunday
    ({"full": "weekly", "diff": None, "incr": None}, 168),
])
def test_the_longest_gap_between_two_backups(entries, gap_h):
    assert schedule.interval(entries) == gap_h * 3600


def test_due_types_biggest_first_and_once():
    entries = {"full": "Sun 01:00", "diff": "daily", "incr": "hourly"}
    sunday_one = datetime.datetime(2026, 12, 6, 1, 0, 10)
    assert schedule.due(entries, {}, sunday_one) == ["full", "incr"]
    taken = {kind: sunday_one.isoformat() for kind in ("full", "incr")}
    assert schedule.due(entries, taken, sunday_one + datetime.timedelta(seconds=40)) == []
    # a firing missed while a long backup ran is caught up once
    assert schedule.due(entries, taken, datetime.datetime(2026, 12, 6, 3, 5)) == ["incr"]


def test_the_program_refuses_a_bad_schedule(capsys):
    assert schedule.main(["check", "--script=/bin/true", "--state-file=/tmp/x", "--incr=Mon *:10"]) == 2
    assert "--incr: every hour on some days only" in capsys.readouterr().err
    assert schedule.main(["check", "--script=/bin/true", "--state-file=/tmp/x", "--full=Sun 01:00"]) == 0
