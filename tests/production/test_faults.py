"""Faults: the broker down, S3 unreachable, PostgreSQL restarted in the middle of an ingest.

Nothing here touches the machine's shared PostgreSQL or Redis: the broker that is down is a closed port,
S3 is a moto server (then a closed port), and the restarted PostgreSQL is a private cluster this test
creates (initdb in a temporary folder, its own port) and removes.
"""
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pytest
import time_machine

from marketdata import daily
from marketdata.models import IngestRun, PriceBar
from marketdata.panels import load_bars, refresh_panels
from parakeet.models import Alert
from tests.conftest import MARKETDATA
from tests.marketdata.test_daily import US_EVENING, US_SESSION, preload, server  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
CLOSED_PORT = "http://127.0.0.1:1"  # nothing listens there: connection refused at once


@pytest.fixture
def celery_broker():
    """Point the Celery app at a broker URL for one test (the app reads its settings once)."""
    from parakeet.celery import app

    old = (app.conf.broker_url, app.conf.task_always_eager)

    def reset_pools():
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    def use(url):
        app.conf.broker_url, app.conf.task_always_eager = url, False
        reset_pools()

    yield use
    app.conf.broker_url, app.conf.task_always_eager = old
    reset_pools()


# --- the broker down -------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)  # autocommit, as in production: the enqueue happens in the request
def test_a_refresh_with_the_broker_down_is_a_503_and_the_run_says_nothing_ran(client, alice_write, settings,
                                                                              celery_broker):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_broker("redis://127.0.0.1:1/0")
    with time_machine.travel(US_EVENING, tick=False):
        response = client.post("/api/v1/data/refresh", {"exchange": "XNYS", "session": "2021-04-20"},
                               content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {alice_write}")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("queue: the task queue (CELERY_BROKER_URL) did not take the run (OperationalError); "
                             "nothing ran.")
    assert "manage.py daily --exchange XNYS --date 2021-04-20" in detail
    run = IngestRun.objects.get()
    assert (run.status, run.errors, run.finished_at is not None) == ("failed", [detail], True)
    assert client.get("/healthz").status_code == 503  # and the health check says why


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_up_the_run_is_queued_not_run(client, alice_write, settings, celery_broker):
    import redis

    url = os.environ.get("PARAKEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_broker(url)
    queue = redis.Redis.from_url(url)
    queue.delete("celery")
    try:
        with time_machine.travel(US_EVENING, tick=False):
            response = client.post("/api/v1/data/refresh", {"exchange": "XNYS", "session": "2021-04-20"},
                                   content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {alice_write}")
        assert response.status_code == 202
        assert response.json()["runs"][0]["status"] == "running"  # waiting for a worker
        assert queue.llen("celery") == 1
    finally:
        queue.delete("celery")


# --- S3 unreachable --------------------------------------------------------------------------------------

@pytest.fixture
def s3_panels(settings, monkeypatch, tmp_path):
    """STORAGES['marketdata'] on a moto S3 server; returns a switch to make it unreachable and back."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    endpoint = "http://%s:%s" % moto.get_host_and_port()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="desk-data")

    def at(url):
        settings.STORAGES = {**settings.STORAGES, "marketdata": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "desk-data", "endpoint_url": url, "file_overwrite": True}}}

    at(endpoint)
    yield lambda reachable: at(endpoint if reachable else CLOSED_PORT)
    moto.stop()


@pytest.mark.django_db
def test_s3_unreachable_keeps_the_bars_and_the_next_run_writes_the_panels(server, s3_panels):  # noqa: F811
    preload()
    refresh_panels()  # the panels as they were before the outage
    s3_panels(False)
    with time_machine.travel(US_EVENING, tick=False):
        failed = daily.run_scheduled(exchange="XNYS")
    assert failed.status == "failed"
    assert [(s["step"], s["status"]) for s in failed.steps] == [("ingest", "ok"), ("panels", "failed")]
    assert failed.errors[-1].startswith("panels: Could not connect to the endpoint URL")
    assert PriceBar.objects.filter(date=US_SESSION).count() == 3  # the ingest's rows stay
    assert Alert.objects.filter(key=f"daily-failed:{failed.pk}").exists()

    # An hour later Zappa's second rule (or the next beat) finds the session not done and runs it again.
    s3_panels(True)
    with time_machine.travel(US_EVENING + dt.timedelta(hours=1), tick=False):
        retried = daily.run_scheduled(exchange="XNYS")
    assert retried.status == "success" and retried.rows_inserted == 0  # nothing fetched twice
    panels = next(s for s in retried.steps if s["step"] == "panels")
    assert panels["status"] == "ok" and panels["detail"]["since"] is None  # every year compared
    assert PriceBar.objects.filter(date=US_SESSION).count() == 3
    bars = load_bars(exchange="XNAS", start=US_SESSION, end=US_SESSION)  # fresh: no PanelsStale
    assert sorted(bars["symbol"]) == ["AAPL", "MSFT"]


# --- PostgreSQL restarted mid-ingest ---------------------------------------------------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args):
    """Run a PostgreSQL server tool as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@pytest.fixture
def private_postgres(tmp_path_factory):
    """A PostgreSQL cluster of this test's own on a free port; yields (url, restart)."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    initdb = shutil.which("initdb") or (str(installed[-1] / "initdb") if installed else "initdb")
    pg_ctl = shutil.which("pg_ctl") or (str(installed[-1] / "pg_ctl") if installed else "pg_ctl")
    if not Path(initdb).exists() or (os.geteuid() == 0 and not shutil.which("runuser")):
        pytest.skip("needs PostgreSQL's initdb and pg_ctl (and runuser as root)")
    home = Path(tempfile.mkdtemp(prefix="parakeet-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = home / "data", _free_port()
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]),
                   check=True, capture_output=True)
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = lambda *args: subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-l", str(home / "log"), "-w", *args]),
                                       check=True, capture_output=True)
    ctl("-o", options, "start")
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE faults")
    try:
        yield (f"postgres://postgres@127.0.0.1:{port}/faults",
               lambda: ctl("-o", options, "-m", "immediate", "restart"))
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="a PostgreSQL fault: runs once, in the PostgreSQL pass of bin/test")
def test_postgresql_restarted_mid_ingest_then_a_rerun_completes_with_nothing_lost_or_doubled(private_postgres,
                                                                                           tmp_path):
    import psycopg
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    url, restart = private_postgres
    source = pq.read_table(MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet")
    tickers = sorted(set(source.column("ticker").to_pylist()))[:120]
    part = source.filter(pc.is_in(source.column("ticker").cast("string"), value_set=__import__("pyarrow").array(tickers)))
    path = tmp_path / "slice.parquet"
    pq.write_table(part, path)
    expected_rows, expected_close = part.num_rows, round(pc.sum(part.column("close")).as_py(), 4)

    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "parakeet.settings.base",
           "PARAKEET_DATA_DIR": str(tmp_path / "panels"), "LOG_LEVEL": "WARNING"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    ingest = [*manage, "ingest", "--provider", "parquet", "--path", str(path)]

    first = subprocess.Popen(ingest, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = psycopg.connect(url.replace("/faults", "/postgres"), autocommit=True)
    caught = False
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline:
        busy = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = 'faults' AND state = 'active' "
                               "AND (query ILIKE 'COPY%' OR query ILIKE 'INSERT INTO%pricebar%')").fetchone()[0]
        if busy:
            restart()  # in the middle of the bulk write
            caught = True
            break
        time.sleep(0.02)
    watcher.close()
    out, err = first.communicate(timeout=120)
    assert caught, "the ingest finished before the restart could hit it; use a larger slice"
    assert first.returncode != 0, out + err  # the interrupted ingest failed, loudly

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM marketdata_pricebar").fetchone()[0] == 0  # rolled back whole

    second = subprocess.run(ingest, cwd=ROOT, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stdout + second.stderr
    again = subprocess.run(ingest, cwd=ROOT, env=env, capture_output=True, text=True)  # and idempotent
    assert again.returncode == 0, again.stdout + again.stderr
    with psycopg.connect(url) as conn:
        rows, distinct, close = conn.execute(
            "SELECT count(*), count(DISTINCT (instrument_id, date)), round(sum(close)::numeric, 4) "
            "FROM marketdata_pricebar").fetchone()
        statuses = [s for (s,) in conn.execute("SELECT status FROM marketdata_ingestrun ORDER BY id")]
    assert rows == distinct == expected_rows  # nothing lost, nothing doubled
    assert float(close) == pytest.approx(expected_close, abs=1e-3)
    assert statuses[-2:] == ["success", "success"]
