"""The Celery beat schedule of the daily chain: after each close in the exchange's own time zone, across DST.

Each case is a week around a daylight-saving switch: the entry fires on Friday at the local run time,
then not again until Monday at the same local time, which is an hour earlier or later in UTC.
"""
import datetime as dt
import pickle

import pytest
import time_machine
from django.conf import settings

from parakeet import schedules
from parakeet.celery import app

UTC = dt.timezone.utc


def entry(exchange):
    schedule = settings.CELERY_BEAT_SCHEDULE[f"daily-{exchange.lower()}"]["schedule"]
    schedule.app = app
    return schedule


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


def is_due(schedule, last_run_at, now):
    with time_machine.travel(now, tick=False):
        return schedule.is_due(last_run_at)


# (exchange, Friday's run in UTC, Monday's run in UTC, hours between them)
SWITCHES = [
    # Sydney leaves AEDT (UTC+11) for AEST (UTC+10) on Sun 7 April 2024: 17:30 is 06:30 then 07:30 UTC.
    ("XASX", utc(2024, 4, 5, 6, 30), utc(2024, 4, 8, 7, 30), 73),
    # ... and goes back to AEDT on Sun 6 October 2024: 07:30 then 06:30 UTC.
    ("XASX", utc(2024, 10, 4, 7, 30), utc(2024, 10, 7, 6, 30), 71),
    # New York leaves EST (UTC-5) for EDT (UTC-4) on Sun 10 March 2024: 18:00 is 23:00 then 22:00 UTC.
    ("XNYS", utc(2024, 3, 8, 23, 0), utc(2024, 3, 11, 22, 0), 71),
    # ... and goes back to EST on Sun 3 November 2024: 22:00 then 23:00 UTC.
    ("XNYS", utc(2024, 11, 1, 22, 0), utc(2024, 11, 4, 23, 0), 73),
]


@pytest.mark.parametrize("exchange, friday, monday, hours", SWITCHES)
def test_it_fires_at_the_same_local_time_either_side_of_the_switch(exchange, friday, monday, hours):
    schedule = entry(exchange)
    thursday = friday - dt.timedelta(days=1)
    assert is_due(schedule, thursday, friday - dt.timedelta(minutes=1)) == (False, 60.0)
    due, _ = is_due(schedule, thursday, friday + dt.timedelta(seconds=5))
    assert due
    # After Friday's run the next is Monday at the same local time: 72 h -/+ the hour the clocks moved.
    due, seconds = is_due(schedule, friday, friday + dt.timedelta(seconds=5))
    assert not due and seconds == hours * 3600 - 5
    assert (monday - friday) == dt.timedelta(hours=hours)


@pytest.mark.parametrize("exchange, friday, monday, hours", SWITCHES)
def test_it_is_not_due_at_the_hour_the_other_offset_would_give(exchange, friday, monday, hours):
    schedule = entry(exchange)
    wrong = monday + dt.timedelta(hours=1 if hours == 71 else -1)  # Friday's UTC hour, on Monday
    if wrong < monday:
        assert not is_due(schedule, friday, wrong)[0]
    else:
        # An hour after Monday's run it has run already; with Monday as the last run it is not due again.
        assert not is_due(schedule, monday, wrong)[0]
    assert is_due(schedule, friday, monday + dt.timedelta(seconds=1))[0]


def test_it_does_not_fire_at_the_weekend():
    schedule = entry("XASX")
    friday = utc(2024, 3, 8, 6, 30)
    for hours in (24, 48):  # Saturday and Sunday 17:30 Sydney
        assert not is_due(schedule, friday, friday + dt.timedelta(hours=hours, seconds=1))[0]


def test_the_beat_has_one_entry_per_exchange_calling_the_task_for_its_due_session():
    from marketdata.tasks import run_daily_chain

    beat = settings.CELERY_BEAT_SCHEDULE
    assert set(beat) == {"daily-xasx", "daily-xnys", "retry-rate-limited"}
    for exchange in ("XASX", "XNYS"):
        item = beat[f"daily-{exchange.lower()}"]
        assert item["task"] == "marketdata.tasks.run_daily_chain"
        assert item["kwargs"] == {"exchange": exchange, "scheduled": True}
        assert app.tasks[item["task"]].name == run_daily_chain.name  # registered under that name
    assert repr(beat["daily-xasx"]["schedule"]) == "<local_crontab: 30 17 mon-fri (m/h/dow) Australia/Sydney>"
    assert repr(beat["daily-xnys"]["schedule"]) == "<local_crontab: 0 18 mon-fri (m/h/dow) America/New_York>"


def test_the_beat_sweeps_for_rate_limited_runs_every_ten_minutes():
    from marketdata.tasks import retry_rate_limited

    item = settings.CELERY_BEAT_SCHEDULE["retry-rate-limited"]
    assert (item["task"], item["schedule"]) == ("marketdata.tasks.retry_rate_limited", 600.0)
    assert app.tasks[item["task"]].name == retry_rate_limited.name


def test_the_schedule_survives_the_persistent_scheduler_pickle():
    schedule = schedules.after_close("XASX")
    again = pickle.loads(pickle.dumps(schedule))
    assert again == schedule and again.zone == "Australia/Sydney"
    assert again.tz.key == "Australia/Sydney"
