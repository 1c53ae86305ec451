"""Celery tasks of the strategies app: each takes ids and calls one service."""
from parakeet.celery import app
from parakeet.lazy import lazy_module

from .models import BacktestRun, BacktestSweep

services = lazy_module("strategies.services")  # pandas: loaded when a task runs, not when the web app enqueues


@app.task(name="strategies.tasks.run_backtest_task")
def run_backtest_task(run_id):
    """Execute a queued BacktestRun; returns its final status."""
    run = BacktestRun.objects.get(pk=run_id)
    return services.execute_backtest(run).status


@app.task(name="strategies.tasks.run_sweep_chunk", bind=True)
def run_sweep_chunk(self, sweep_id, chunk):
    """Run chunk `chunk` of a sweep's parameter sets; the worker's host name is stored with each result."""
    sweep = BacktestSweep.objects.get(pk=sweep_id)
    worker = "eager" if self.request.is_eager else (self.request.hostname or "worker")
    services.execute_sweep_chunk(sweep, chunk, worker=worker)
    return chunk
