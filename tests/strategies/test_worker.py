"""A sweep fanned out to a real Celery worker through the Redis at 127.0.0.1:6379 (database 5).

Everything runs in subprocesses against a throwaway SQLite file and data folder: a driver ingests the real
slice and starts the sweep (tasks go to Redis, not in-process, because a broker is configured), and a worker
started here with a name of its own runs them. The test reads the outcome from the database file.
"""
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/5"
WORKER = "parakeet-sweep-test"

DRIVER = """
import datetime as dt, django, sys
django.setup()
from marketdata.panels import refresh_panels
from marketdata.services import ingest_bars
from marketdata.universes import import_memberships
from strategies import services
ingest_bars(provider="parquet", path=sys.argv[1])
import_memberships(code="SP500", path=sys.argv[2])
refresh_panels()
sweep = services.start_sweep(strategy="moving_average", universe="AAPL", start=dt.date(2014, 1, 2),
                             end=dt.date(2016, 12, 30), grid={"fast": [10, 20], "slow": [50, 100]},
                             engine={"commission_min": 1.0}, chunk_size=1, walk_forward={"train": 252, "test": 63})
print(sweep.pk)
"""


def redis_up():
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
        return True
    except OSError:
        return False


def test_a_sweep_fans_out_to_a_real_celery_worker(tmp_path, desk_files):
    assert redis_up(), "Redis is not listening on 127.0.0.1:6379 (the suite runs against the real services)"
    database = tmp_path / "worker.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "PARAKEET_DATA_DIR": str(tmp_path / "marketdata"),
           "CELERY_BROKER_URL": BROKER, "DJANGO_SETTINGS_MODULE": "parakeet.settings.base", "LOG_LEVEL": "WARNING"}
    for name in ("PARAKEET_S3_BUCKET", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)
    celery = [sys.executable, "-m", "celery", "-A", "parakeet"]
    subprocess.run([*celery, "purge", "-f"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True, timeout=300)
    driver = subprocess.run([sys.executable, "-c", DRIVER, str(desk_files["bars"]), str(desk_files["members"])],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr
    sweep_id = int(driver.stdout.strip().splitlines()[-1])
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([*celery, "worker", "--pool", "solo", "-n", f"{WORKER}@%h", "--without-gossip",
                               "--without-mingle", "--without-heartbeat", "-l", "info"],
                              env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with sqlite3.connect(database) as db:
                status, = db.execute("SELECT status FROM strategies_backtestsweep WHERE id = ?", (sweep_id,)).fetchone()
            if status in ("success", "failed"):
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.5)
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT chunk, worker FROM strategies_sweepresult WHERE sweep_id = ? ORDER BY chunk",
                              (sweep_id,)).fetchall()
            error, validation = db.execute("SELECT error, validation FROM strategies_backtestsweep WHERE id = ?",
                                           (sweep_id,)).fetchone()
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
        log.close()
    assert status == "success", error or (tmp_path / "worker.log").read_text()
    # Four parameter sets, one task each, every one run by the worker started here (not in-process).
    assert [chunk for chunk, _ in rows] == [0, 1, 2, 3]
    assert {name for _, name in rows} == {f"{WORKER}@{socket.gethostname()}"}
    assert '"deflated_sharpe"' in validation
    assert "strategies.tasks.run_sweep_chunk" in (tmp_path / "worker.log").read_text()
