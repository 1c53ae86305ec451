"""The journal's step of the daily chain (settings.DAILY_HOOKS): mark the books after each exchange's data."""
import datetime as dt

from . import services


def snapshot_portfolios(*, exchange, session, run):
    """After `exchange`'s ingest and panel refresh: update the snapshots of the portfolios it concerns.

    Each portfolio continues from its stale mark or its last snapshot; bars the ingest wrote before
    that (a backfill: the run's `since`) make it recompute from there. Returns a summary for the run's
    step detail.
    """
    since = (run.params or {}).get("since") if run is not None else None
    since = dt.date.fromisoformat(since) if since else None
    results = services.snapshot_portfolios(exchange=exchange, since=since)
    return {
        "portfolios": len(results),
        "written": sum(r.written for r in results),
        "unvalued": sum(len(r.unvalued) for r in results),
        "session": session.isoformat() if session else None,
    }
