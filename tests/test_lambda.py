"""Zappa's scheduled events for the daily chain, checked with Zappa's own code (PITFALLS BR-31).

`zappa schedule` is run for real against EventBridge and Lambda served by moto (in-process), so the
rule names are the ones Zappa 0.63 makes (get_scheduled_event_name: lambda name, index for a second
expression, hashing of long names). Each rule's Scheduled Event is then routed by Zappa's own
LambdaHandler, which picks the function from the rule ARN, into parakeet.lambda_handlers.
"""
import datetime as dt
import importlib
import io
import json
import sys
import types
import zipfile
from pathlib import Path

import boto3
import pytest
import time_machine
from moto import mock_aws
from zappa.cli import ZappaCLI
from zappa.handler import LambdaHandler

from marketdata.models import IngestRun, PriceBar
from tests.marketdata.test_daily import US_SESSION, preload, server  # noqa: F401 (fixture)

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "zappa_settings.json"
UTC = dt.timezone.utc
HANDLERS = {"XASX": "parakeet.lambda_handlers.daily_xasx", "XNYS": "parakeet.lambda_handlers.daily_xnys"}


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "ap-southeast-2"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def zappa_cli(stage, settings_file=SETTINGS_FILE):
    cli = ZappaCLI()
    cli.api_stage = stage
    cli.load_settings(str(settings_file))
    return cli


def schedule(stage, settings_file=SETTINGS_FILE):
    """Run `zappa schedule <stage>` against moto; {rule name: (expression, [target ARNs])}."""
    cli = zappa_cli(stage, settings_file)
    role = boto3.client("iam").create_role(RoleName=cli.zappa.role_name, AssumeRolePolicyDocument="{}")["Role"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    pass\n")
    boto3.client("lambda").create_function(FunctionName=cli.lambda_name, Runtime="python3.11", Role=role["Arn"],
                                           Handler="handler.lambda_handler", Code={"ZipFile": code.getvalue()})
    cli.schedule()
    events = boto3.client("events")
    rules = {}
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        rules[rule["Name"]] = (rule.get("ScheduleExpression"), [t["Arn"] for t in targets], rule["Arn"])
    return cli, rules


def routed_function(rule_arn):
    """The function Zappa's handler runs for a rule's Scheduled Event (handler.py's own parsing)."""
    return rule_arn.split("/")[-1].split("-")[-1]


# --- BR-31: every expression is its own rule, aimed at the right function --------------------------------

@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_zappa_makes_one_distinct_rule_per_expression(aws, stage):
    cli, rules = schedule(stage)
    configured = [(event["function"], expression) for event in json.loads(SETTINGS_FILE.read_text())["dev"]["events"]
                  for expression in event["expressions"]]
    assert len(configured) == 5  # two per exchange, and the retry sweep
    daily_rules = {name: rule for name, rule in rules.items() if "keep_warm" not in name}
    # Five expressions, five rules: none overwrote another (BR-31's symptom was one rule left).
    assert len(daily_rules) == 5
    assert sorted((routed_function(arn), expression) for expression, _, arn in daily_rules.values()) == sorted(configured)
    function_arn = f"arn:aws:lambda:ap-southeast-2:123456789012:function:{cli.lambda_name}"
    assert all(targets == [function_arn] for _, targets, _ in rules.values())
    assert ("zappa-keep-warm-handler.keep_warm_callback" in " ".join(rules)) == (stage == "prod")


def test_the_rules_cover_both_utc_offsets_of_each_exchange_at_its_local_run_time():
    from zoneinfo import ZoneInfo

    from parakeet import schedules

    events = {event["function"]: event["expressions"] for event in zappa_cli("dev").stage_config["events"]}
    for exchange, function in HANDLERS.items():
        at, zone = schedules.RUN_AT[exchange], ZoneInfo(schedules.ZONES[exchange])
        expected = set()
        for day in (dt.date(2024, 1, 15), dt.date(2024, 7, 15)):  # a winter and a summer Monday, either hemisphere
            utc = dt.datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
            expected.add(f"cron({utc.minute} {utc.hour} ? * MON-FRI *)")
        assert set(events[function]) == expected


def test_two_entries_for_one_function_collide_as_br31_says(aws, tmp_path):
    # The reduced input of BR-31: one function, two single-expression entries. Zappa names both rules
    # alike, so the second overwrites the first; the check above is what catches it.
    config = json.loads(SETTINGS_FILE.read_text())
    config["dev"]["events"] = [
        {"function": "parakeet.lambda_handlers.daily_xnys", "expression": "cron(30 21 ? * MON-FRI *)"},
        {"function": "parakeet.lambda_handlers.daily_xnys", "expression": "cron(30 6 ? * MON-FRI *)"},
    ]
    bad = tmp_path / "zappa_settings.json"
    bad.write_text(json.dumps(config))
    _, rules = schedule("dev", bad)
    assert [expression for expression, _, _ in rules.values()] == ["cron(30 6 ? * MON-FRI *)"]


# --- invoking the handlers the way Lambda does ---------------------------------------------------------------

@pytest.fixture
def lambda_handler(monkeypatch):
    """Zappa's LambdaHandler, set up from the settings module `zappa package` would generate for dev."""
    cli = zappa_cli("dev")
    module = types.ModuleType("parakeet_test_zappa_settings")
    exec(cli.get_zappa_settings_string(), module.__dict__)  # noqa: S102 - Zappa's own generated settings
    # In the test process: keep the suite's settings, environment and log levels; the code is here
    # already (the slim handler would download it from S3 first).
    module.DJANGO_SETTINGS = "parakeet.settings.test"
    module.ENVIRONMENT_VARIABLES = {}
    module.LOG_LEVEL = None
    module.ARCHIVE_PATH = None
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for name in ("SERVERTYPE", "FRAMEWORK", "PROJECT", "STAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(LambdaHandler, "_LambdaHandler__instance", None)
    handler = LambdaHandler(settings_name=module.__name__)
    yield handler
    LambdaHandler._LambdaHandler__instance = None
    importlib.invalidate_caches()


def scheduled_event(rule_arn, when):
    """The payload Zappa's InputTransformer gives the function for an EventBridge Scheduled Event."""
    return {"time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "region": "ap-southeast-2", "detail": {}, "version": "0",
            "resources": [rule_arn], "id": "5c0b7a1e-0000-4000-8000-000000000000", "kwargs": {}}


def test_each_rule_routes_to_its_exchange_handler(aws, lambda_handler, monkeypatch):
    _, rules = schedule("dev")
    calls = []
    monkeypatch.setattr("marketdata.daily.run_scheduled",
                        lambda *, exchange, now=None, trigger: calls.append((exchange, trigger)))
    monkeypatch.setattr("marketdata.daily.retry_due", lambda *, now=None: calls.append(("retry", now)) or [])
    for name, (_, _, arn) in sorted(rules.items()):
        answer = lambda_handler.handler(scheduled_event(arn, dt.datetime(2024, 3, 8, 23, 0, tzinfo=UTC)), None)
        if "retry" in name:
            assert answer == {"retried": []}
        else:
            assert answer == {"exchange": "XNYS" if "xnys" in name else "XASX", "ran": False}
    assert sorted(calls, key=str) == [("XASX", "lambda"), ("XASX", "lambda"), ("XNYS", "lambda"), ("XNYS", "lambda"),
                                      ("retry", None)]


@pytest.mark.django_db
def test_of_the_two_utc_rules_only_the_one_after_the_local_run_time_runs(aws, lambda_handler, server):  # noqa: F811
    # Tue 20 April 2021, New York on EDT (UTC-4): the 22:00 UTC rule is 18:00 local and runs the
    # session; the 23:00 UTC rule (19:00 local) finds it done. The next day the 22:00 rule runs again.
    preload()
    _, rules = schedule("dev")
    early, late = (rules[f"parakeet-dev-{prefix}parakeet.lambda_handlers.daily_xnys"][2] for prefix in ("", "1-"))
    at_22 = dt.datetime(2021, 4, 20, 22, 0, 5, tzinfo=UTC)
    with time_machine.travel(at_22, tick=False):
        first = lambda_handler.handler(scheduled_event(early, at_22), None)
    assert first["ran"] and first["session"] == "2021-04-20" and first["status"] == "success"
    at_23 = at_22 + dt.timedelta(hours=1)
    with time_machine.travel(at_23, tick=False):
        assert lambda_handler.handler(scheduled_event(late, at_23), None) == {"exchange": "XNYS", "ran": False}
    assert IngestRun.objects.filter(kind="daily").count() == 1
    assert PriceBar.objects.filter(date=US_SESSION).count() == 3


@pytest.mark.django_db
def test_in_winter_the_early_rule_is_before_the_run_time_and_finds_yesterday_done(server):  # noqa: F811
    # Fri 8 March 2024, New York still on EST (UTC-5): 22:00 UTC is 17:00 local, before the 18:00 run
    # time, so the due session is Thursday's; with Thursday done, nothing runs until 23:00 UTC.
    from parakeet.lambda_handlers import daily_xnys

    IngestRun.objects.create(kind="daily", provider="tiingo", exchange="XNYS", session=dt.date(2024, 3, 7),
                             status="success")
    with time_machine.travel(dt.datetime(2024, 3, 8, 22, 0, tzinfo=UTC), tick=False):
        assert daily_xnys(scheduled_event("arn:aws:events:x:1:rule/r", dt.datetime.now(UTC)), None) == {
            "exchange": "XNYS", "ran": False}
    assert IngestRun.objects.filter(kind="daily").count() == 1


# --- BR-31: a manual refresh behind API Gateway answers 202 and runs in its own invocation ---------------------

@pytest.mark.django_db
def test_on_lambda_a_refresh_answers_202_and_the_chain_runs_in_an_asynchronous_invocation(
        aws, lambda_handler, server, client, alice_write, settings, monkeypatch,  # noqa: F811
        django_capture_on_commit_callbacks):
    preload()
    settings.PARAKEET_TASKS_VIA_LAMBDA = True
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "parakeet-dev")
    sent = []

    class Lambda:  # boto3's client as far as dispatch uses it; Lambda answers 202 to an Event invocation
        def invoke(self, **kwargs):
            sent.append(kwargs)
            return {"StatusCode": 202}

    monkeypatch.setattr("parakeet.lambda_handlers._lambda_client", Lambda)
    evening = dt.datetime(2021, 4, 20, 22, 30, tzinfo=UTC)
    with time_machine.travel(evening, tick=False), django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/data/refresh", {"exchange": "XNYS", "session": "2021-04-20"},
                               content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {alice_write}")
    assert response.status_code == 202
    [run] = response.json()["runs"]
    # Answered with nothing done: the work went to Lambda as an asynchronous invocation of this function.
    assert IngestRun.objects.get(pk=run["id"]).status == "running"
    assert PriceBar.objects.filter(date=US_SESSION).count() == 0
    [call] = sent
    assert (call["FunctionName"], call["InvocationType"]) == ("parakeet-dev", "Event")
    event = json.loads(call["Payload"])
    assert event["command"] == "parakeet.lambda_handlers.run_task"
    # The invocation, routed by Zappa's own handler, runs the chain.
    with time_machine.travel(evening, tick=False):
        answer = lambda_handler.handler(event, None)
    assert answer["state"] == "SUCCESS"
    assert IngestRun.objects.get(pk=run["id"]).status == "success"
    assert PriceBar.objects.filter(date=US_SESSION).count() == 3


@pytest.mark.django_db
def test_when_lambda_refuses_the_invocation_the_task_runs_in_the_request(settings, monkeypatch, alice, caplog):
    from trades import tasks
    from trades.models import Portfolio

    book = Portfolio.objects.create(name="Alice", owner=alice, inception_date=dt.date(2024, 1, 2))
    settings.PARAKEET_TASKS_VIA_LAMBDA = True
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)  # no function to invoke: a KeyError inside
    ran = []
    monkeypatch.setattr("trades.services.snapshot_portfolio",
                        lambda *, portfolio, **kw: ran.append(portfolio.pk) or types.SimpleNamespace(written=0))
    tasks.update_snapshots.delay(book.pk)
    assert ran == [book.pk]
    assert "the asynchronous invocation failed" in caplog.text
