"""Exchange session calendars (exchange-calendars), loaded once per process."""
import threading
import warnings
from functools import lru_cache

import exchange_calendars
import pandas as pd

from .models import CALENDAR_OF

# Bars older than this are not checked against a calendar (exchange-calendars needs a start).
EARLIEST = "1960-01-04"
_building = threading.Lock()  # warnings.catch_warnings is process-wide state: one build at a time


def calendar_name(exchange):
    """The calendar an exchange's bars are dated in ('XNAS' -> 'XNYS'), or None for venue-less series."""
    return CALENDAR_OF.get(exchange)


@lru_cache(maxsize=8)
def sessions(name):
    """Every session of calendar `name` from 1960 to a year ahead, as midnight DatetimeIndex (tz-naive)."""
    with _building, warnings.catch_warnings():
        # exchange-calendars 4.13 reads Series.values on tz-aware data, which pandas 3.1 deprecates.
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        calendar = exchange_calendars.get_calendar(name, start=EARLIEST)
    return pd.DatetimeIndex(calendar.sessions).tz_localize(None)
