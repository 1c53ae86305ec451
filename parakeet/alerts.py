"""Alerts: tell the desk once per incident, by email (Django's mail settings) and SNS when a topic is set.

An incident has a key; the first process to insert the Alert row with that key sends it, every other
process (another Lambda container, the next health check, the next page) finds the row and stays
quiet. Sending never raises: a channel that fails is recorded on the row and logged.

Incidents Parakeet raises:
- `daily-failed:<run id>`: a daily run ended failed or provider-error (marketdata.daily, at its end);
- `stale:<exchange>:<last bar date>`: an exchange's bars are two or more sessions behind its calendar
  (checked at the end of every daily run and by /healthz); new bars end the incident, so the next
  staleness is a new one.
"""
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from .models import Alert

logger = logging.getLogger(__name__)


def raise_alert(key, subject, body=""):
    """Send `subject`/`body` to the configured channels unless incident `key` was already alerted.

    Returns the new Alert, or None when the incident was known.
    """
    try:
        with transaction.atomic():
            alert = Alert.objects.create(key=key[:200], subject=subject[:300], body=body)
    except IntegrityError:
        return None
    for channel, send in (("email", _email), ("sns", _sns)):
        try:
            if send(alert):
                alert.sent_to.append(channel)
        except Exception as exc:  # a mail server or SNS being down must not stop the caller's work
            alert.errors.append(f"{channel}: {type(exc).__name__}: {exc}")
            logger.exception("alert %s: %s failed", key, channel)
    alert.save(update_fields=["sent_to", "errors"])
    logger.warning("alert %s: %s (sent to %s)", key, subject, ", ".join(alert.sent_to) or "no channel",
                   extra={"alert": key})
    return alert


def _email(alert):
    if not settings.ALERT_EMAILS:
        return False
    send_mail(f"[Parakeet] {alert.subject}", alert.body or alert.subject, None, settings.ALERT_EMAILS)
    return True


def _sns(alert):
    if not settings.ALERT_SNS_TOPIC:
        return False
    import boto3

    client = boto3.client("sns", region_name=settings.AWS_SNS_REGION_NAME)
    # SNS subjects: at most 100 printable ASCII characters.
    subject = f"[Parakeet] {alert.subject}".encode("ascii", "replace").decode()[:100]
    client.publish(TopicArn=settings.ALERT_SNS_TOPIC, Subject=subject, Message=alert.body or alert.subject)
    return True


def check_data(now=None):
    """Raise the alerts the data calls for: stale exchanges and failed last daily runs (freshness.banner)."""
    from marketdata import freshness

    warning = freshness.banner(now)
    raised = []
    for row in (warning or {}).get("stale", []):
        subject = (f"{row['label']} data is {row['sessions_behind']} sessions behind "
                   f"(last bar {row['last_date']}, expected {row['expected'] or 'a newer session'})")
        raised.append(raise_alert(f"stale:{row['exchange']}:{row['last_date']}", subject,
                                  f"{subject}.\nThe data page /data/ shows the freshness per exchange and the runs."))
    for run in (warning or {}).get("failed", []):
        raised.append(daily_failed(run["id"], run["exchange"], run["session"], run["status"], run["error"]))
    return [alert for alert in raised if alert is not None]


def daily_failed(run_id, exchange, session, status, error):
    subject = f"{exchange} daily run #{run_id} for {session} ended {status}"
    return raise_alert(f"daily-failed:{run_id}", subject,
                       f"{subject}: {error or 'no error recorded'}\nSee /data/runs/{run_id}/ for its steps.")
