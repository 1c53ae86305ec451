"""Request ids and JSON logs, /healthz, and alerts (email, SNS on moto) once per incident."""
import datetime as dt
import io
import json
import logging

import boto3
import pytest
import time_machine
from django.core import mail

from marketdata.models import IngestRun
from parakeet.models import Alert
from parakeet.observability import JsonFormatter, RequestIdFilter

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc
# Wed 13 March 2024, 23:00 UTC: AAPL's last bar (Fri 8 March) is 3 NYSE sessions behind (11, 12, 13).
WEDNESDAY_NIGHT = dt.datetime(2024, 3, 13, 23, 0, tzinfo=UTC)


# --- request ids and structured logs ---------------------------------------------------------------------

@pytest.fixture
def json_log():
    """Every log line written while the block runs, as the production console handler formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_every_response_carries_a_request_id(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert len(first["X-Request-ID"]) == 32 and first["X-Request-ID"] != second["X-Request-ID"]


def test_a_caller_request_id_is_kept_and_a_malformed_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a9c2e-0001")["X-Request-ID"] == "lb-7f3a9c2e-0001"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert "\n" not in replaced and len(replaced) == 32


def test_every_log_line_of_a_request_carries_its_id(client, alice_read, json_log, settings):
    settings.API_TOKEN_RATE = (1, 60)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {alice_read}"}
    client.get("/api/v1/data/instruments", **headers)
    response = client.get("/api/v1/data/instruments", **headers)  # 429, logged by django.request
    missing = client.get("/no/such/page/")  # 404 for anonymous: the login redirect, so log one ourselves
    lines = json_log()
    throttled = [line for line in lines if line.get("status_code") == 429]
    assert throttled and all(line["request_id"] == response["X-Request-ID"] for line in throttled)
    assert throttled[0]["level"] == "WARNING" and throttled[0]["logger"] == "django.request"
    assert throttled[0]["path"] == "/api/v1/data/instruments" and "request" not in throttled[0]
    assert {"time", "message"} <= set(throttled[0])
    assert missing["X-Request-ID"] != response["X-Request-ID"]


def test_log_lines_outside_a_request_say_so(json_log):
    logging.getLogger("marketdata.daily").info("a line from a command")
    assert json_log()[-1]["request_id"] == "-"


def test_the_lambda_request_id_is_used_when_api_gateway_sends_one(rf):
    from parakeet.observability import RequestIdMiddleware

    request = rf.get("/healthz")
    request.META["lambda.event"] = {"requestContext": {"requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"}}
    response = RequestIdMiddleware(lambda r: __import__("django.http").http.HttpResponse())(request)
    assert response["X-Request-ID"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


# --- /healthz -------------------------------------------------------------------------------------------

def test_healthz_answers_without_login_and_names_each_check(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok", "storage": "ok", "broker": "ok", "data": "ok"}
    assert body["checks"]["broker"]["detail"] == "no broker configured: tasks run in-process"


def test_healthz_is_503_when_the_broker_is_down(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from parakeet.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = old
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["status"] == "fail"
    assert "127.0.0.1" not in response.content.decode()  # no hosts, users or keys in the answer


def test_healthz_is_503_when_the_storage_is_unreachable(client, settings, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "desk-data", "endpoint_url": "http://127.0.0.1:1", "region_name": "us-east-1"}}}
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["status"] == "fail"


@time_machine.travel(WEDNESDAY_NIGHT, tick=False)
def test_stale_data_is_a_warning_not_a_503_and_alerts_once(client, aapl, settings):
    settings.ALERT_EMAILS = ["desk@example.com"]
    first, second = client.get("/healthz"), client.get("/healthz")
    assert first.status_code == second.status_code == 200
    data = first.json()["checks"]["data"]
    assert data == {"status": "warn", "detail": "XNAS 3 sessions behind (last bar 2024-03-08)"}
    # Two probes, one incident: one alert, one email.
    assert list(Alert.objects.values_list("key", flat=True)) == ["stale:XNAS:2024-03-08"]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == ("[Parakeet] Nasdaq data is 3 sessions behind (last bar 2024-03-08, "
                                      "expected 2024-03-13)")
    assert mail.outbox[0].to == ["desk@example.com"]


# --- alerts ---------------------------------------------------------------------------------------------

@pytest.fixture
def sns_queue(aws, settings):
    """An SNS topic (moto on loopback) with an SQS queue subscribed, to read back what was published."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="parakeet-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    settings.ALERT_SNS_TOPIC = topic
    settings.AWS_SNS_REGION_NAME = "ap-southeast-2"

    def received():
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    yield received
    sns.delete_topic(TopicArn=topic)
    sqs.delete_queue(QueueUrl=queue)


@time_machine.travel(dt.datetime(2024, 3, 8, 23, 0, tzinfo=UTC), tick=False)
def test_a_failed_daily_run_is_alerted_by_email_and_sns_once(aapl, settings, sns_queue):
    from parakeet import alerts

    settings.ALERT_EMAILS = ["desk@example.com", "ops@example.com"]
    run = IngestRun.objects.create(kind="daily", provider="tiingo", exchange="XNYS", session=dt.date(2024, 3, 8),
                                   status="failed", errors=["panels: S3 unreachable"])
    raised = alerts.check_data()
    assert [a.key for a in raised] == [f"daily-failed:{run.pk}"]
    assert raised[0].sent_to == ["email", "sns"] and raised[0].errors == []
    assert alerts.check_data() == []  # the same incident: nothing more is sent
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["desk@example.com", "ops@example.com"]
    assert f"XNYS daily run #{run.pk} for 2024-03-08 ended failed: panels: S3 unreachable" in mail.outbox[0].body
    [message] = sns_queue()
    assert message["Subject"] == f"[Parakeet] XNYS daily run #{run.pk} for 2024-03-08 ended failed"
    assert message["Message"].startswith(f"XNYS daily run #{run.pk} for 2024-03-08 ended failed")


def test_a_channel_that_fails_is_recorded_and_the_other_still_sends(settings, aws):
    from parakeet import alerts

    settings.ALERT_EMAILS = ["desk@example.com"]
    settings.ALERT_SNS_TOPIC = "arn:aws:sns:ap-southeast-2:123456789012:no-such-topic"
    alert = alerts.raise_alert("test:1", "something happened", "details")
    assert alert.sent_to == ["email"]
    assert alert.errors[0].startswith("sns: ")
    assert len(mail.outbox) == 1
