"""/healthz: is this instance fit to serve? For the load balancer and the uptime monitor; no login, no secrets.

Checks (storage and broker in threads with a deadline, so a hung endpoint cannot hang the probe; the
database has its connect timeout):
- database: `SELECT 1` on the default connection;
- storage: one existence check in STORAGES["marketdata"] (a HEAD on S3);
- broker: a connection to CELERY_BROKER_URL (none configured: tasks run in-process, which is fine);
- data: freshness of every exchange and the last daily runs (marketdata.freshness); also raises the
  alerts they call for (parakeet.alerts), once per incident.
A failing database, storage or broker answers 503; stale data or a failed daily run is a warning (200):
taking the site out of the load balancer would not bring the data back. The body says which check
failed and why, in words that name no host, user or key.
"""
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

DEADLINE_SECONDS = 5.0
CRITICAL = ("database", "storage", "broker")
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="healthz")


def _database():
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok", "connected"


def _storage():
    from django.core.files.storage import storages

    storages["marketdata"].exists("ohlcv/daily/.healthz")
    return "ok", "reachable"


def _broker():
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "ok", "no broker configured: tasks run in-process"
    from parakeet.celery import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=DEADLINE_SECONDS / 2)
    return "ok", "connected"


def _data():
    from marketdata import freshness
    from parakeet import alerts

    warning = freshness.banner()
    alerts.check_data()
    if not warning:
        return "ok", "every exchange current; no failed daily run"
    parts = [f"{row['exchange']} {row['sessions_behind']} sessions behind (last bar {row['last_date']})"
             for row in warning["stale"]]
    parts += [f"{run['exchange']} daily run #{run['id']} {run['status']}" for run in warning["failed"]]
    return "warn", "; ".join(parts)


IN_THREADS = {"storage": _storage, "broker": _broker}


def _safe_error(exc):
    # The exception text of a driver can carry a host or a user name; its type says enough here.
    return f"{type(exc).__name__}"


def _run(check):
    try:
        status, detail = check()
    except Exception as exc:
        status, detail = "fail", _safe_error(exc)
    return {"status": status, "detail": detail}


@login_not_required
@never_cache
@require_safe
def healthz(request):
    began = time.monotonic()
    futures = {name: _pool.submit(check) for name, check in IN_THREADS.items()}
    results = {"database": _run(_database)}
    results["data"] = _run(_data) if results["database"]["status"] == "ok" else {
        "status": "warn", "detail": "not checked: no database"}
    for name, future in futures.items():
        try:
            status, detail = future.result(timeout=max(DEADLINE_SECONDS - (time.monotonic() - began), 0.1))
        except FutureTimeout:
            status, detail = "fail", f"no answer within {DEADLINE_SECONDS:g} s"
        except Exception as exc:
            status, detail = "fail", _safe_error(exc)
        results[name] = {"status": status, "detail": detail}
    results = {name: results[name] for name in ("database", "storage", "broker", "data")}
    failed = [name for name in CRITICAL if results[name]["status"] == "fail"]
    if results["data"]["status"] == "fail":
        results["data"]["status"] = "warn"  # the data check itself erring is not a reason to leave the pool
    body = {"status": "fail" if failed else "ok", "checks": results,
            "seconds": round(time.monotonic() - began, 3)}
    return JsonResponse(body, status=503 if failed else 200)
