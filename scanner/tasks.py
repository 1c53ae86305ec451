"""Celery tasks of the scanner: each takes a row id and calls one service; enqueued when the request commits."""
from django.db import transaction

from parakeet.celery import app
from parakeet.lazy import lazy_module

from .models import ScanReplay, ScanRun

services = lazy_module("scanner.services")  # pandas: loaded when a task runs, not when the web app enqueues


@app.task(name="scanner.tasks.run_scan")
def run_scan(run_id):
    """Run the queued ScanRun `run_id` (POST /scanner/scan and the page enqueue it); returns its status."""
    return services.run_scan(ScanRun.objects.get(pk=run_id)).status


def enqueue_scan(run_id):
    """Run the scan once the current transaction commits (robust: a task that cannot start is logged and
    the run stays queued, which its page says)."""
    transaction.on_commit(lambda: run_scan.delay(run_id), robust=True)


def enqueue_replay(replay_id):
    transaction.on_commit(lambda: run_replay.delay(replay_id), robust=True)


@app.task(name="scanner.tasks.run_replay")
def run_replay(replay_id):
    """Run the queued ScanReplay `replay_id`; returns its status."""
    return services.run_replay(ScanReplay.objects.get(pk=replay_id)).status
