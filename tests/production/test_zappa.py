"""The Lambda function as Zappa builds it: the stage's configuration boots production settings, and the WSGI
app and the scheduled functions answer API Gateway and EventBridge payloads through Zappa's own handler.

Scheduled events are covered in tests/test_lambda.py (rule names, routing, the two UTC rules); here the
web side: an API Gateway (REST, payload 1.0) event goes through `LambdaHandler.handler`, exactly the code
path of a request on Lambda, into Parakeet's middleware, auth and views.
"""
import json
from pathlib import Path

import pytest

from parakeet.models import Alert
from tests.test_lambda import lambda_handler, scheduled_event, zappa_cli  # noqa: F401 (fixture)

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "zappa_settings.json"
HOST = "abc123xyz.execute-api.ap-southeast-2.amazonaws.com"
pytestmark = pytest.mark.django_db


def api_gateway_event(path, *, method="GET", query=None, headers=None, request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef"):
    """What API Gateway's Lambda proxy integration sends (REST API, payload format 1.0)."""
    headers = {"Host": HOST, "Accept": "application/json", "X-Forwarded-Proto": "https",
               "X-Forwarded-For": "203.0.113.7", **(headers or {})}
    return {
        "resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query, "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": method, "path": f"/dev{path}", "stage": "dev",
                           "requestId": request_id, "accountId": "123456789012",
                           "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"}},
        "body": None, "isBase64Encoded": False,
    }


@pytest.fixture
def on_lambda(lambda_handler, settings, wsgi_keeps_the_test_connection):  # noqa: F811
    from django.urls import set_script_prefix

    settings.ALLOWED_HOSTS = [".execute-api.ap-southeast-2.amazonaws.com"]
    yield lambda_handler
    set_script_prefix("/")  # Django kept API Gateway's stage prefix (/dev/) for this thread's reverse()


def test_each_stage_boots_the_production_settings_from_its_environment_and_secret(settings_from, aws):
    import boto3

    secret = {"SECRET_KEY": "Zx9-" + "q7Lm2Pw8Rt4Vn6Bc1Hd3Jf5Kg0" * 3,
              "DATABASE_URL": "postgres://desk:pw@ep-x-pooler.ap-southeast-2.aws.neon.tech/desk?sslmode=require",
              "TIINGO_API_KEY": "tk"}
    client = boto3.client("secretsmanager")
    for stage in ("dev", "prod"):
        cli = zappa_cli(stage)
        environment = cli.stage_config["environment_variables"]
        assert cli.stage_config["runtime"] == "python3.11" and cli.stage_config["timeout_seconds"] == 300
        assert cli.stage_config["django_settings"] == environment["DJANGO_SETTINGS_MODULE"] == "parakeet.settings.prod"
        client.create_secret(Name=environment["PARAKEET_SECRETS_ARN"], SecretString=json.dumps(secret))
        s = settings_from("prod", **environment)
        assert s["SECRET_KEY"] == secret["SECRET_KEY"] and s["DEBUG"] is False
        assert s["STORAGES"]["marketdata"]["OPTIONS"]["bucket_name"] == f"parakeet-data-{stage}"
        assert s["CACHES"]["default"]["BACKEND"].endswith("DatabaseCache")  # shared by every container
        assert s["DATABASES"]["default"]["DISABLE_SERVER_SIDE_CURSORS"] is True  # the pooled endpoint
    assert zappa_cli("prod").stage_config["keep_warm"] is True


def test_an_api_gateway_request_reaches_the_api_through_zappa(on_lambda, aapl, alice_read):
    event = api_gateway_event("/api/v1/data/prices/AAPL", query={"start": "2024-03-07", "end": "2024-03-08"},
                              headers={"Authorization": f"Bearer {alice_read}"})
    answer = on_lambda.handler(event, None)
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    assert [bar["close"] for bar in body["bars"]] == [169.00, 170.73]
    # The request id in the logs and the header is API Gateway's own.
    assert answer["multiValueHeaders"]["X-Request-ID"] == ["c6af9ac6-7b61-11e6-9a41-93e8deadbeef"]


def test_an_anonymous_api_gateway_request_gets_401_and_a_page_the_login_redirect(on_lambda):
    assert on_lambda.handler(api_gateway_event("/api/v1/data/instruments"), None)["statusCode"] == 401
    page = on_lambda.handler(api_gateway_event("/data/", headers={"Accept": "text/html"}), None)
    assert page["statusCode"] == 302
    # Behind API Gateway the stage is part of the URL: the redirect keeps it.
    assert page["multiValueHeaders"]["Location"][0].startswith("/dev/accounts/login/")


def test_healthz_answers_through_zappa(on_lambda):
    answer = on_lambda.handler(api_gateway_event("/healthz"), None)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["status"] == "ok"


def test_every_scheduled_function_runs_from_an_eventbridge_payload(on_lambda, monkeypatch):
    import datetime as dt

    ran = []
    monkeypatch.setattr("marketdata.daily.run_scheduled",
                        lambda *, exchange, now=None, trigger: ran.append((exchange, trigger)))
    monkeypatch.setattr("marketdata.daily.retry_due", lambda *, now=None: ran.append(("retry", None)) or [])
    for event in zappa_cli("dev").stage_config["events"]:
        rule = f"arn:aws:events:ap-southeast-2:123456789012:rule/parakeet-dev-{event['function']}"
        answer = on_lambda.handler(scheduled_event(rule, dt.datetime(2024, 3, 8, 23, 0, tzinfo=dt.UTC)), None)
        assert answer == ({"retried": []} if event["function"].endswith("retry_rate_limited") else
                          {"exchange": answer.get("exchange"), "ran": False})
    assert ran == [("XASX", "lambda"), ("XNYS", "lambda"), ("retry", None)]
    assert not Alert.objects.exists()
