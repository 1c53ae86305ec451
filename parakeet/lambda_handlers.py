"""Lambda entry points of Zappa's scheduled events (zappa_settings.json `events`), one per exchange.

AWS cron is UTC, so each exchange has two rules, one for each of its UTC offsets (daylight saving
or not). Both fire every weekday; the handler asks the exchange calendar and the local clock which
session is due (parakeet.schedules.RUN_AT) and runs it only if no run of it has succeeded yet: the
rule an hour early finds the previous session done, the rule an hour late finds today's done.
"""
import logging

logger = logging.getLogger(__name__)


def _setup():
    import django
    from django.apps import apps

    if not apps.ready:  # Zappa's handler sets Django up for web requests; a bare invocation may not
        django.setup()


def _run(exchange, event):
    _setup()
    from marketdata import daily

    run = daily.run_scheduled(exchange=exchange, trigger="lambda")
    if run is None:
        logger.info("daily %s: the due session already ran (event %s)", exchange, event.get("id"))
        return {"exchange": exchange, "ran": False}
    logger.info("daily %s %s: %s (run #%s)", exchange, run.session, run.status, run.pk)
    return {"exchange": exchange, "ran": True, "run": run.pk, "session": run.session.isoformat(),
            "status": run.status}


def daily_xasx(event, context):
    """ASX's daily chain (rules at 06:30 and 07:30 UTC: 17:30 Sydney in AEDT and in AEST)."""
    return _run("XASX", event)


def daily_xnys(event, context):
    """NYSE's daily chain (rules at 22:00 and 23:00 UTC: 18:00 New York in EDT and in EST)."""
    return _run("XNYS", event)


def retry_rate_limited(event, context):
    """The retry sweep (a rate rule): re-run daily runs that ended rate limited once Retry-After passed."""
    _setup()
    from marketdata import daily

    runs = daily.retry_due()
    for run in runs:
        logger.info("retry %s %s: %s (run #%s)", run.exchange, run.session, run.status, run.pk)
    return {"retried": [run.pk for run in runs]}


# --- tasks in their own invocation (parakeet/celery.py) -------------------------------------------------

def _lambda_client():
    import boto3

    return boto3.client("lambda")


def dispatch(task, args, kwargs):
    """Invoke this function asynchronously to run Celery task `task`; True when Lambda took it (202).

    The event is Zappa's direct-command shape, {"command": "parakeet.lambda_handlers.run_task", ...}, which
    Zappa's handler routes to run_task. If the invocation is refused (permissions, throttling), the task
    runs here, in the request, as it would without Lambda, and the log says why (False is returned).
    """
    import json
    import os

    payload = json.dumps({"command": "parakeet.lambda_handlers.run_task", "task": task, "args": args,
                          "kwargs": kwargs})
    try:
        answer = _lambda_client().invoke(FunctionName=os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                                         InvocationType="Event", Payload=payload.encode())
    except Exception as exc:  # botocore's errors, a missing function name: run in-process instead
        logger.warning("task %s: the asynchronous invocation failed (%s: %s); running it in this request",
                       task, type(exc).__name__, exc)
        return False
    logger.info("task %s%s sent to an asynchronous invocation (status %s)", task, tuple(args),
                answer.get("StatusCode"))
    return answer.get("StatusCode") == 202


def run_task(event, context):
    """Run the Celery task an asynchronous invocation carries (sent by dispatch); its state and result."""
    _setup()
    from parakeet.celery import app

    task = app.tasks[event["task"]]
    result = task.apply(args=event.get("args") or [], kwargs=event.get("kwargs") or {})
    logger.info("task %s%s ran: %s", event["task"], tuple(event.get("args") or []), result.state)
    return {"task": event["task"], "state": result.state, "result": result.result}
