"""How current the stored bars are: sessions behind the exchange calendar, per exchange, for every page."""
import datetime as dt

from django.core.cache import cache
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from .models import CALENDAR_OF, Exchange, IngestRun, Instrument, PriceBar

EXCHANGE_LABELS = dict(Exchange.choices)
# The exchanges the daily chain runs for; the banner names their last daily run when it failed.
DAILY_EXCHANGES = ("XASX", "XNYS")
FAILED = (IngestRun.Status.FAILED, IngestRun.Status.PROVIDER_ERROR)
CACHE_KEY = "marketdata:freshness"
COVERAGE_KEY = "marketdata:coverage"
HEALTH_KEY = "marketdata:health"
CACHE_SECONDS = 60


def freshness(exchange, last_date, now):
    """{sessions_behind, days_ago, status, expected} for bars of `exchange` ending on `last_date`.

    `sessions_behind` counts the exchange's sessions that closed after `last_date` and at or before
    `now`; `expected` is the latest of them (the session the data should reach). 0 behind is
    "current", 1 is "behind" (the latest close may simply not be ingested yet), 2 or more "stale".
    Venues without a calendar (FX) count weekdays strictly after the last bar and before today
    (today's bar is not due until its close), and expect nothing in particular.
    """
    # The calendars need pandas: a page pays for them when it shows freshness, the URLconf never does.
    import numpy as np

    from . import calendars

    expected = None
    if calendars.calendar_name(exchange) is not None:
        try:
            expected = calendars.latest_closed_session(exchange, now)
        except ValueError:
            pass  # `now` before the calendar's first close: fall back to weekdays
    if expected is not None:
        behind = calendars.count_sessions_between(exchange, last_date + dt.timedelta(days=1), expected)
    else:
        behind = max(int(np.busday_count(last_date + dt.timedelta(days=1), now.date())), 0)
    status = "current" if behind == 0 else "behind" if behind == 1 else "stale"
    return {"sessions_behind": behind, "days_ago": (now.date() - last_date).days, "status": status,
            "expected": expected}


DAILY_FIELDS = ("id", "status", "session", "started_at", "finished_at")


def latest_by_exchange():
    """The newest bar date of each exchange and the last daily run of each daily exchange, in one query.

    {'exchanges': [(exchange, last bar date)], 'daily': {exchange: {id, status, session, started_at,
    finished_at}}, 'failed': [failed last daily runs with their errors]}. An exchange's newest bar is
    the newest of its instruments' latest bars, each one probe of the unique (instrument, date) index,
    so the cost grows with instruments, not bars. Only when a last daily run failed does a second
    query read its errors.
    """
    last_bar = PriceBar.objects.filter(instrument=OuterRef("pk")).order_by("-date").values("date")[:1]
    latest_daily = {}
    for exchange in DAILY_EXCHANGES:
        runs = IngestRun.objects.filter(kind=IngestRun.Kind.DAILY, exchange=exchange).order_by("-started_at", "-id")
        for field in DAILY_FIELDS:
            latest_daily[f"{exchange}_{field}"] = Subquery(runs.values(field)[:1])
    rows = list(
        Instrument.objects.order_by().values("exchange")
        .annotate(last_date=Max(Subquery(last_bar)), **latest_daily)
        .order_by("exchange")
    )
    daily = {}
    for exchange in DAILY_EXCHANGES:
        if rows and rows[0][f"{exchange}_id"] is not None:
            daily[exchange] = {field: rows[0][f"{exchange}_{field}"] for field in DAILY_FIELDS}
    if any(run["status"] == IngestRun.Status.RUNNING for run in daily.values()) and IngestRun.objects.close_interrupted():
        return latest_by_exchange()  # a killed run would have said "running" forever: now it says failed
    failed = [run["id"] for run in daily.values() if run["status"] in FAILED]
    return {
        "exchanges": [(row["exchange"], row["last_date"]) for row in rows if row["last_date"] is not None],
        "daily": daily,
        "failed": list(IngestRun.objects.filter(pk__in=failed).order_by("exchange").values(
            "id", "exchange", "session", "status", "errors", "started_at")) if failed else [],
    }


def _latest():
    latest = cache.get(CACHE_KEY)
    if latest is None:
        latest = latest_by_exchange()
        cache.set(CACHE_KEY, latest, CACHE_SECONDS)
    return latest


def by_exchange(now=None):
    """Freshness rows for the data page: per exchange with bars, its latest bar, the session expected,
    how many sessions behind, and (XASX, XNYS) its last daily run. Read through the banner's cache."""
    now = now or timezone.now()
    latest = _latest()
    rows = []
    for exchange, last_date in latest["exchanges"]:
        rows.append({"exchange": exchange, "label": EXCHANGE_LABELS.get(exchange, exchange), "last_date": last_date,
                     **freshness(exchange, last_date, now), "daily": latest["daily"].get(exchange)})
    return rows


def banner(now=None):
    """What the stale-data banner on every page says: stale exchanges and failed last daily runs.

    Reads `latest_by_exchange()` through the cache (a minute; the daily chain clears it when it
    ends), so a page costs one query a minute. Returns None when there is nothing to warn about.
    """
    now = now or timezone.now()
    latest = _latest()
    stale = []
    for exchange, last_date in latest["exchanges"]:
        state = freshness(exchange, last_date, now)
        if state["status"] == "stale":
            # XNAS and Arca bars come with the XNYS chain: the venue's calendar names its daily exchange.
            chain = CALENDAR_OF.get(exchange)
            stale.append({"exchange": exchange, "label": EXCHANGE_LABELS.get(exchange, exchange),
                          "last_date": last_date, "never_run": chain in DAILY_EXCHANGES and chain not in latest["daily"],
                          **state})
    failed = [{**run, "error": run["errors"][-1] if run["errors"] else ""} for run in latest["failed"]]
    if not stale and not failed:
        return None
    never_run = [row["exchange"] for row in stale if row["never_run"]]
    return {"stale": stale, "failed": failed, "never_run": never_run}


def coverage():
    """PriceBar.objects.coverage_by_exchange() as a list, through the cache like the banner.

    It aggregates every bar (about 0.3 s over 1.7 M bars on PostgreSQL), which the overview page
    cannot pay on every view; a minute old at most, and fresh after every ingest and daily run.
    """
    return cached(COVERAGE_KEY, lambda: list(PriceBar.objects.coverage_by_exchange()))


def cached(key, compute):
    """compute() through the cache for CACHE_SECONDS; forget() drops it after every ingest, run and review."""
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


def forget():
    """Drop the cached freshness and coverage, so the next page reads the bars again (after an ingest)."""
    cache.delete_many([CACHE_KEY, COVERAGE_KEY, HEALTH_KEY])
