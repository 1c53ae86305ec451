"""Celery tasks of the journal: each takes ids and calls one service."""
from parakeet.celery import app

from . import services
from .models import Portfolio


@app.task(name="trades.tasks.update_snapshots")
def update_snapshots(portfolio_id):
    """Bring one portfolio's snapshots up to date from its stale mark (enqueued when a journal write
    commits). Returns the number of snapshot days written, or None when the portfolio is gone."""
    portfolio = Portfolio.objects.filter(pk=portfolio_id).first()
    if portfolio is None:
        return None
    return services.snapshot_portfolio(portfolio=portfolio).written
