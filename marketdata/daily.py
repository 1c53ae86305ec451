"""The daily chain of one exchange and session: ingest (quality checks included), Parquet refresh, hooks.

Every run leaves one IngestRun (kind daily) whose `steps` say what each step did and how long it took.
A failing step stops the chain and the run ends failed naming the error; nothing stored is removed.
Runs of one exchange never overlap (a PostgreSQL advisory lock, a process lock on SQLite), so a
duplicate beat or the second of Zappa's two UTC rules cannot ingest the same session twice; and a
run after a complete one changes nothing (the ingest is incremental, the panels compare fingerprints).
"""
import contextlib
import datetime as dt
import logging
import threading
import time
import zlib
from collections import defaultdict

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone
from django.utils.module_loading import import_string

from parakeet import schedules

from . import calendars, freshness
from .models import CALENDAR_OF, IngestRun, Instrument, PriceBar

logger = logging.getLogger(__name__)
EXCHANGES = tuple(schedules.RUN_AT)
# The venues dated by each daily exchange's calendar: the XNYS run also brings Nasdaq and Arca listings.
VENUES = {exchange: tuple(venue for venue, name in CALENDAR_OF.items() if name == exchange) for exchange in EXCHANGES}
# Ingest outcomes after which the chain goes on (what was stored is sound) and the run's final status.
GOES_ON = {IngestRun.Status.SUCCESS: "ok", IngestRun.Status.PARTIAL: "partial",
           IngestRun.Status.RATE_LIMITED: "rate_limited"}
SEVERITY = ["ok", "partial", "rate_limited", "provider_error", "failed"]
RUN_STATUS = {"ok": IngestRun.Status.SUCCESS, "partial": IngestRun.Status.PARTIAL,
              "rate_limited": IngestRun.Status.RATE_LIMITED, "provider_error": IngestRun.Status.PROVIDER_ERROR,
              "failed": IngestRun.Status.FAILED}


class DailyError(ValueError):
    """A daily run that cannot start: unknown exchange, a date that is not a session or has not closed."""


class ExchangeBusy(RuntimeError):
    """Another daily run of the exchange still held its lock after the wait (`waited` seconds)."""

    def __init__(self, message, *, waited=0.0):
        super().__init__(message)
        self.waited = waited


class StepFailed(Exception):
    def __init__(self, message, status="failed"):
        super().__init__(message)
        self.status = status


def resolve_session(exchange, session=None, now=None):
    """The session a run is for: `session` checked against the calendar, or the latest one closed at `now`.

    Raises DailyError for an exchange without a daily chain, a date that is not one of its sessions
    (naming the sessions either side) or a session that has not closed yet at `now`.
    """
    exchange = _exchange(exchange)
    now = now or timezone.now()
    if session is None:
        return calendars.latest_closed_session(exchange, now)
    cal = calendars.calendar(exchange)
    first, last = cal.first_session.date(), cal.last_session.date()
    if not first <= session <= last:  # the calendar cannot even be asked (year 1 overflows pandas)
        raise DailyError(f"{session} is outside the {exchange} calendar ({first} to {last})")
    if not calendars.is_session(exchange, session):
        cal = calendars.calendar(exchange)
        before = cal.date_to_session(session, direction="previous").date()
        after = cal.date_to_session(session, direction="next").date()
        raise DailyError(f"{session:%a %Y-%m-%d} is not an {exchange} session "
                         f"(the sessions either side are {before} and {after})")
    close = calendars.session_close(exchange, session)
    if close > now:
        local = close.astimezone(calendars.zone(exchange))
        raise DailyError(f"the {exchange} session of {session} has not closed yet "
                         f"(it closes at {local:%H:%M} {calendars.zone(exchange).key}, {close:%H:%M} UTC)")
    return session


def due_session(exchange, now=None):
    """The latest session whose scheduled run time (schedules.RUN_AT, exchange's local clock) has passed."""
    exchange = _exchange(exchange)
    local = (now or timezone.now()).astimezone(calendars.zone(exchange))
    day = local.date() if local.time() >= schedules.RUN_AT[exchange] else local.date() - dt.timedelta(days=1)
    return calendars.calendar(exchange).date_to_session(day, direction="previous").date()


def provider_for(exchange):
    """The provider the exchange's daily run fetches from (settings.DAILY_PROVIDERS)."""
    return settings.DAILY_PROVIDERS[_exchange(exchange)]


def start_daily(*, exchange, session=None, now=None, requested_by=None, trigger="call") -> IngestRun:
    """Record a daily run (status running) for `exchange` and its resolved session, without running it.

    The API answers 202 with this row's id and enqueues run_daily(run=...). Raises DailyError.
    """
    exchange = _exchange(exchange)
    session = resolve_session(exchange, session, now)
    provider = provider_for(exchange)
    return IngestRun.objects.create(
        kind=IngestRun.Kind.DAILY, provider=provider, exchange=exchange, session=session,
        params={"exchange": exchange, "session": session.isoformat(), "provider": provider, "trigger": trigger},
        requested_by=requested_by,
    )


def run_daily(*, exchange, session=None, now=None, requested_by=None, run=None, trigger="call") -> IngestRun:
    """Run the daily chain of `exchange` for `session` (default: the latest closed at `now`).

    Steps, in order, each recorded in run.steps as {step, status, seconds, detail}: `ingest` (the
    exchange's provider, incremental, for its active instruments, quality checks included), `panels`
    (refresh the Parquet files that changed), then one `hook:<path>` per settings.DAILY_HOOKS entry.
    A failing step stops the chain; the run ends failed (or provider_error) naming the error. `run`
    continues a row made by start_daily. Raises DailyError (before any row is made) for bad input.
    """
    if run is None:
        run = start_daily(exchange=exchange, session=session, now=now, requested_by=requested_by, trigger=trigger)
    exchange, session = run.exchange, run.session
    outcome = "ok"
    try:
        with exchange_lock(exchange, run):
            for name, step in _chain(exchange):
                status = _step(run, name, step, exchange=exchange, session=session)
                outcome = max(outcome, status, key=SEVERITY.index)
                if status not in ("ok", "partial", "rate_limited"):
                    break
    except ExchangeBusy as exc:
        run.steps.append({"step": "lock", "status": "failed", "seconds": _seconds(exc.waited), "detail": str(exc)})
        run.errors.append(f"lock: {exc}")
        outcome = "failed"
    finally:
        run.status = RUN_STATUS[outcome]
        run.finished_at = timezone.now()
        run.save()
        freshness.forget()
        _alert(run)
    return run


def _alert(run):
    """Tell the desk (parakeet.alerts, once per incident) when the run failed or the data is stale."""
    from parakeet import alerts

    try:
        if run.status in freshness.FAILED:
            alerts.daily_failed(run.pk, run.exchange, run.session, run.status, run.errors[-1] if run.errors else "")
        alerts.check_data()
    except Exception:  # an alert that cannot be raised must not turn a finished run into an exception
        logger.exception("daily %s %s: could not raise the alerts", run.exchange, run.session)


def enqueue_daily(run) -> bool:
    """Hand a run made by start_daily to the task queue (marketdata.tasks.run_daily_chain).

    In-process without a broker. When the broker cannot be reached the run ends failed at once, its
    error saying that nothing ran and how to run it by hand; returns False then, True when queued.
    """
    from kombu.exceptions import OperationalError as QueueUnreachable

    from .tasks import run_daily_chain

    try:
        run_daily_chain.delay(run.exchange, run_id=run.pk)
    except QueueUnreachable as exc:
        error = (f"queue: the task queue (CELERY_BROKER_URL) did not take the run ({type(exc).__name__}); "
                 f"nothing ran. Start it again later, or run `manage.py daily --exchange {run.exchange} "
                 f"--date {run.session}`")
        IngestRun.objects.filter(pk=run.pk).update(status=IngestRun.Status.FAILED, finished_at=timezone.now(),
                                                   errors=[error])
        logger.error("daily %s %s: run #%s not queued: %s", run.exchange, run.session, run.pk, exc)
        return False
    return True


# A scheduled run of a session that ended so is not repeated: partial means the provider answered and
# only some symbols had nothing (a listing that stopped trading); tomorrow's incremental run asks again.
DONE = (IngestRun.Status.SUCCESS, IngestRun.Status.PARTIAL)


def run_scheduled(*, exchange, now=None, trigger="schedule") -> IngestRun | None:
    """What a scheduler fires: run the due session (due_session) unless a run of it already ended done.

    Both of Zappa's UTC rules for an exchange, and a beat that fires on a holiday, land here: the one
    that finds its session done (success or partial) returns None without a row; after a failed,
    provider-error or rate-limited run it runs again.
    """
    session = due_session(exchange, now)
    done = IngestRun.objects.filter(kind=IngestRun.Kind.DAILY, exchange=exchange, session=session,
                                    status__in=DONE).exists()
    if done:
        return None
    return run_daily(exchange=exchange, session=session, now=now, trigger=trigger)


def retry_due(*, now=None) -> list[IngestRun]:
    """Run again each exchange's latest daily run that ended rate limited once its `retry_at` has passed.

    What "retry scheduled" means (PITFALLS BR-14): the scheduler calls this every few minutes (a beat
    entry, a Zappa rate rule). A retry is a new run of the same session; it may end rate limited again,
    with its own retry_at, until settings.DAILY_MAX_RETRIES retries of the session have been made.
    """
    now = now or timezone.now()
    runs = []
    for exchange in EXCHANGES:
        latest = (IngestRun.objects.filter(kind=IngestRun.Kind.DAILY, exchange=exchange)
                  .order_by("-started_at", "-id").first())
        if latest is None or latest.status != IngestRun.Status.RATE_LIMITED:
            continue
        if latest.retry_at is None or latest.retry_at > now:
            continue
        retries = IngestRun.objects.filter(kind=IngestRun.Kind.DAILY, exchange=exchange, session=latest.session,
                                           params__trigger="retry").count()
        if retries >= settings.DAILY_MAX_RETRIES:
            continue
        runs.append(run_daily(exchange=exchange, session=latest.session, now=now, trigger="retry"))
    return runs


# --- steps -------------------------------------------------------------------------------------------

def _chain(exchange):
    steps = [("ingest", _ingest), ("panels", _panels)]
    for path in settings.DAILY_HOOKS:
        steps.append((f"hook:{path}", _hook(path)))
    return steps


def _step(run, name, step, **kwargs):
    began = time.monotonic()
    try:
        status, detail = step(run, **kwargs)
    except Exception as exc:  # a step's failure is the run's record, never an exception out of the chain
        status = getattr(exc, "status", "failed")
        message = str(exc) or type(exc).__name__
        detail = {"error": message}
        run.errors.append(f"{name}: {message}")
    run.steps.append({"step": name, "status": status, "seconds": _seconds(time.monotonic() - began),
                      "detail": detail})
    # Saved after every step, so a run that dies (Lambda timeout) still shows how far it got.
    run.save(update_fields=["steps", "errors", "params", "symbols", "rows_read", "rows_inserted", "rows_updated",
                            "rows_unchanged", "rows_flagged", "rows_quarantined", "retry_at"])
    return status


def _ingest(run, *, exchange, session):
    """One incremental ingest per venue of the exchange that has active instruments, up to `session`."""
    from .services import ingest_bars

    provider = provider_for(exchange)
    venues = [venue for venue in VENUES[exchange]
              if Instrument.objects.filter(exchange=venue, active=True).exists()]
    run.params = {**run.params, "since": _since(venues, exchange, session)}
    worst, runs = "ok", []
    for venue in venues:
        try:
            ingest = ingest_bars(provider=provider, exchange=venue, end=session, requested_by=run.requested_by,
                                 dormant_sessions=settings.DAILY_DORMANT_SESSIONS)
        except Exception as exc:
            raise StepFailed(f"{venue}: {exc}") from exc
        runs.append({"venue": venue, "run": ingest.pk, "status": ingest.status, "symbols": ingest.symbols,
                     "dormant": ingest.params.get("dormant", 0),
                     "read": ingest.rows_read, "inserted": ingest.rows_inserted, "updated": ingest.rows_updated,
                     "unchanged": ingest.rows_unchanged, "flagged": ingest.rows_flagged,
                     "quarantined": _quarantined(ingest)})
        run.symbols += ingest.symbols
        run.rows_read += ingest.rows_read
        run.rows_inserted += ingest.rows_inserted
        run.rows_updated += ingest.rows_updated
        run.rows_unchanged += ingest.rows_unchanged
        run.rows_flagged += ingest.rows_flagged
        run.rows_quarantined += _quarantined(ingest)
        run.errors.extend(f"ingest {venue}: {error}" for error in ingest.errors)
        if ingest.retry_at and (run.retry_at is None or ingest.retry_at > run.retry_at):
            run.retry_at = ingest.retry_at
        status = GOES_ON.get(ingest.status)
        if status is None:
            first = ingest.errors[0] if ingest.errors else ingest.get_status_display()
            failed = "provider_error" if ingest.status == IngestRun.Status.PROVIDER_ERROR else "failed"
            raise StepFailed(f"{venue}: ingest run #{ingest.pk} ended {ingest.status}: {first}", failed)
        worst = max(worst, status, key=SEVERITY.index)
    return worst, {"provider": provider, "venues": runs, "inserted": run.rows_inserted,
                   "updated": run.rows_updated, "flagged": run.rows_flagged, "quarantined": run.rows_quarantined}


def _panels(run, *, exchange, session):
    """Refresh the Parquet panels of each venue from the earliest date the ingest could have written."""
    from .panels import refresh_panels

    since = run.params.get("since")
    since = dt.date.fromisoformat(since) if since else None
    if _panels_owed(run):
        # The previous run stored bars but could not write the panels (S3 unreachable, say): its bars
        # may lie before `since`, so compare every year (only files whose bars changed are written).
        since = None
    written, skipped, rows = [], 0, 0
    for venue in VENUES[exchange]:
        if not PriceBar.objects.filter(instrument__exchange=venue).exists():
            continue
        result = refresh_panels(exchange=venue, since=since)
        written += result.get("written", [])
        skipped += len(result.get("skipped", []))
        rows += result.get("rows", 0)
    return "ok", {"since": since and since.isoformat(), "written": written, "skipped": skipped, "rows": rows}


def _panels_owed(run):
    """Whether the exchange's previous daily run ended without refreshing its panels."""
    previous = (IngestRun.objects.filter(kind=IngestRun.Kind.DAILY, exchange=run.exchange)
                .exclude(pk=run.pk).filter(started_at__lte=run.started_at).order_by("-started_at", "-id").first())
    if previous is None:
        return False
    return not any(step.get("step") == "panels" and step.get("status") == "ok" for step in previous.steps)


def _hook(path):
    def hook(run, *, exchange, session):
        detail = import_string(path)(exchange=exchange, session=session, run=run)
        return "ok", detail if isinstance(detail, (dict, list, str, int, float, type(None))) else str(detail)

    return hook


def _since(venues, exchange, session):
    """The earliest date the incremental ingest can write: the day after the stalest last bar of the
    instruments it asks for (active, and not dormant: see ingest_from_provider)."""
    if not venues:
        return None
    cutoff = calendars.sessions_before(exchange, session, settings.DAILY_DORMANT_SESSIONS)
    last_bar = PriceBar.objects.filter(instrument=OuterRef("pk")).order_by("-date").values("date")[:1]
    instruments = Instrument.objects.filter(exchange__in=venues, active=True).annotate(last=Subquery(last_bar))
    stalest = instruments.filter(last__gte=cutoff).aggregate(stalest=Min("last"))["stalest"] or session
    return (stalest + dt.timedelta(days=1)).isoformat()


def _quarantined(ingest):
    result = getattr(ingest, "result", None)
    return getattr(result, "quarantined", None) or ingest.rows_quarantined


def _seconds(value):
    return round(value, 3)


def _exchange(exchange):
    code = (exchange or "").strip().upper()
    if code not in EXCHANGES:
        raise DailyError(f"exchange {exchange!r} has no daily chain (choose {' or '.join(EXCHANGES)})")
    return code


# --- one run per exchange at a time --------------------------------------------------------------------

_process_locks = defaultdict(threading.Lock)


@contextlib.contextmanager
def exchange_lock(exchange, run):
    """Hold the exchange's daily lock for the block; wait up to settings.DAILY_LOCK_WAIT_SECONDS for it.

    PostgreSQL: a session advisory lock, so runs in other processes and on other machines (Celery
    workers, Lambda) wait for each other. SQLite: a process lock (a SQLite database has one writer).
    A wait is recorded as a `lock` step; raises ExchangeBusy when the wait runs out.
    """
    wait = settings.DAILY_LOCK_WAIT_SECONDS
    began = time.monotonic()
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"parakeet.daily.{exchange}".encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            got = cursor.fetchone()[0]
            if not got:
                try:
                    with transaction.atomic():
                        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{wait * 1000}ms"])
                        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
                except OperationalError as exc:
                    raise ExchangeBusy(_busy(exchange, wait), waited=time.monotonic() - began) from exc
                _waited(run, exchange, began)
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
    else:
        lock = _process_locks[exchange]
        if not lock.acquire(blocking=False):
            if not lock.acquire(timeout=wait):
                raise ExchangeBusy(_busy(exchange, wait), waited=time.monotonic() - began)
            _waited(run, exchange, began)
        try:
            yield
        finally:
            lock.release()


def _busy(exchange, wait):
    return f"another {exchange} daily run still held the lock after {wait} s; nothing was run"


def _waited(run, exchange, began):
    run.steps.append({"step": "lock", "status": "ok", "seconds": _seconds(time.monotonic() - began),
                      "detail": f"waited for another {exchange} daily run to finish"})
