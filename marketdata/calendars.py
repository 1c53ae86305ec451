"""Exchange session calendars (exchange-calendars), loaded once per process."""
import datetime as dt
import threading
import warnings
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars
import numpy as np
import pandas as pd

from .models import CALENDAR_OF

# Bars older than this are not checked against a calendar (exchange-calendars needs a start).
EARLIEST = "1960-01-04"
_building = threading.Lock()  # warnings.catch_warnings is process-wide state: one build at a time


def calendar_name(exchange):
    """The calendar an exchange's bars are dated in ('XNAS' -> 'XNYS'), or None for venue-less series."""
    return CALENDAR_OF.get(exchange)


@lru_cache(maxsize=8)
def calendar(name):
    """The exchange-calendars calendar `name` (XASX, XNYS) from 1960 to a year ahead, built once."""
    with _building, warnings.catch_warnings():
        # exchange-calendars 4.13 reads Series.values on tz-aware data, which pandas 3.1 deprecates.
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        return exchange_calendars.get_calendar(name, start=EARLIEST)


@lru_cache(maxsize=8)
def sessions(name):
    """Every session of calendar `name` from 1960 to a year ahead, as midnight DatetimeIndex (tz-naive)."""
    return pd.DatetimeIndex(calendar(name).sessions).tz_localize(None)


def zone(exchange):
    """The exchange's own time zone (XASX: Australia/Sydney, XNYS and the US venues: America/New_York)."""
    name = calendar_name(exchange)
    if name is None:
        raise ValueError(f"{exchange!r} has no session calendar")
    return ZoneInfo(str(calendar(name).tz))


def is_session(exchange, day):
    """Whether `day` (a date) is a trading session of the exchange's calendar."""
    return calendar(calendar_name(exchange)).is_session(pd.Timestamp(day))


def session_close(exchange, day):
    """When session `day` closed (or closes), as an aware UTC datetime; early closes included."""
    return calendar(calendar_name(exchange)).session_close(pd.Timestamp(day)).to_pydatetime()


def latest_closed_session(exchange, now, *, after=dt.timedelta(0)):
    """The latest session whose close plus `after` is at or before `now` (aware), as a date.

    Closes come from the calendar in the exchange's own time zone, so a Sydney session closes at
    16:00 AEST or AEDT whatever the server's clock says; `after` leaves the providers time to publish.
    """
    closes = _closes(calendar_name(exchange))
    at = np.datetime64(pd.Timestamp(now - after).tz_convert("UTC").tz_localize(None), "ns")
    index = int(np.searchsorted(closes.to_numpy(), at, side="right")) - 1
    if index < 0:
        raise ValueError(f"no {exchange} session closed by {now:%Y-%m-%d %H:%M %Z}")
    return closes.index[index].date()


@lru_cache(maxsize=8)
def _closes(name):
    """Session closes as tz-naive UTC, indexed by session (sorted: closes rise with sessions)."""
    closes = calendar(name).closes
    return pd.Series(pd.DatetimeIndex(closes).tz_localize(None).astype("datetime64[ns]"), index=closes.index)


def sessions_between(exchange, start, end):
    """Sessions of the exchange's calendar in [start, end] (dates), as a list of dates."""
    cal = calendar(calendar_name(exchange))
    start = max(pd.Timestamp(start), cal.first_session)
    end = min(pd.Timestamp(end), cal.last_session)
    if start > end:
        return []
    return [day.date() for day in cal.sessions_in_range(start, end)]


def count_sessions_between(exchange, start, end):
    """How many sessions of the exchange's calendar lie in [start, end] (dates): two binary searches in the
    cached session index, where sessions_between builds the list (the freshness of every page asks this)."""
    index = sessions(calendar_name(exchange)).to_numpy()
    lo = np.searchsorted(index, np.datetime64(start, "ns"), side="left")
    hi = np.searchsorted(index, np.datetime64(end, "ns"), side="right")
    return max(int(hi - lo), 0)


def sessions_before(exchange, day, count):
    """The session `count` sessions before `day` (a date; the session on or before it counts as 0)."""
    index = sessions(calendar_name(exchange))
    at = int(np.searchsorted(index.to_numpy(), np.datetime64(day, "ns"), side="right")) - 1
    return index[max(at - count, 0)].date()
