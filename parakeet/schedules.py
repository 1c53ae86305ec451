"""When the daily chain runs: after each exchange's close, in the exchange's own time zone.

Read by the settings (the Celery beat schedule), the daily chain (is a session's run due yet?) and
the Lambda handlers; no Django imports, so the settings can import it.

The times leave the providers time to publish the session's final bars:
- XASX 17:30 Australia/Sydney: ASX closes at 16:00 and its closing single-price auction ends about
  16:12; Yahoo's daily bar carries the auction price soon after.
- XNYS 18:00 America/New_York: NYSE closes at 16:00 and Tiingo documents most US end-of-day prices
  as available at 17:30 ET (corrections can come until 20:00; the next day's run does not re-fetch
  them, a `--full` ingest does).
"""
import datetime as dt
from zoneinfo import ZoneInfo

from celery.schedules import crontab

ZONES = {"XASX": "Australia/Sydney", "XNYS": "America/New_York"}
RUN_AT = {"XASX": dt.time(17, 30), "XNYS": dt.time(18, 0)}


class local_crontab(crontab):  # noqa: N801 - named like celery's own crontab
    """A crontab read in a given time zone (`zone`), not the Celery app's (UTC).

    celery 5.7's crontab matches its fields in the schedule's `tz` and converts `now` and the last
    run into it, so with the zone's wall clock the entry fires at 17:30 Sydney in AEST and in AEDT,
    instead of at a fixed UTC hour that is an hour off for half the year.
    """

    def __init__(self, minute="*", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", *,
                 zone, **kwargs):
        self.zone = zone
        super().__init__(minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month,
                         month_of_year=month_of_year, **kwargs)

    @property
    def tz(self):
        return ZoneInfo(self.zone)

    def __repr__(self):
        return f"<local_crontab: {self._orig_minute} {self._orig_hour} {self._orig_day_of_week} (m/h/dow) {self.zone}>"

    def __reduce__(self):
        # The persistent beat scheduler pickles its entries; keep the zone through that.
        return (_local_crontab, (self._orig_minute, self._orig_hour, self._orig_day_of_week,
                                 self._orig_day_of_month, self._orig_month_of_year, self.zone))

    def __eq__(self, other):
        if isinstance(other, local_crontab):
            return self.zone == other.zone and super().__eq__(other)
        return NotImplemented

    __hash__ = None


def _local_crontab(minute, hour, day_of_week, day_of_month, month_of_year, zone):
    return local_crontab(minute, hour, day_of_week, day_of_month, month_of_year, zone=zone)


def after_close(exchange):
    """The weekday schedule of `exchange`'s daily chain (holidays are skipped by the chain itself)."""
    at = RUN_AT[exchange]
    return local_crontab(minute=at.minute, hour=at.hour, day_of_week="mon-fri", zone=ZONES[exchange])


# How often the retry sweep looks for rate-limited daily runs whose Retry-After has passed.
RETRY_EVERY = dt.timedelta(minutes=10)


def beat_schedule():
    """CELERY_BEAT_SCHEDULE entries: one per exchange, each running only a session that is due, and the
    sweep that retries rate-limited runs (PITFALLS BR-14)."""
    entries = {
        f"daily-{exchange.lower()}": {
            "task": "marketdata.tasks.run_daily_chain",
            "schedule": after_close(exchange),
            "kwargs": {"exchange": exchange, "scheduled": True},
        }
        for exchange in RUN_AT
    }
    entries["retry-rate-limited"] = {"task": "marketdata.tasks.retry_rate_limited",
                                     "schedule": RETRY_EVERY.total_seconds()}
    return entries
