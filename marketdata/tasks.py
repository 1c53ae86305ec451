"""Celery tasks of the market-data app: each takes ids and strings and calls one service."""
import datetime as dt

from parakeet.celery import app

from . import daily
from .models import IngestRun


@app.task(name="marketdata.tasks.run_daily_chain")
def run_daily_chain(exchange, session=None, run_id=None, scheduled=False):
    """The daily chain of `exchange` (XASX, XNYS) for `session` (YYYY-MM-DD; default the latest closed).

    `run_id`: carry on the IngestRun the API made (start_daily). `scheduled`: the beat's call, which
    runs the due session only if no run of it succeeded yet (daily.run_scheduled). Returns the run id,
    or None when a scheduled run found its session done.
    """
    if scheduled:
        run = daily.run_scheduled(exchange=exchange, trigger="beat")
        return run and run.pk
    run = IngestRun.objects.get(pk=run_id, kind=IngestRun.Kind.DAILY) if run_id else None
    day = dt.date.fromisoformat(session) if session else None
    return daily.run_daily(exchange=exchange, session=day, run=run, trigger="task").pk


@app.task(name="marketdata.tasks.retry_rate_limited")
def retry_rate_limited():
    """The beat's retry sweep: re-run daily runs that ended rate limited and whose retry time has come."""
    return [run.pk for run in daily.retry_due()]
