"""The scanner API through HTTP: 202 and a run id, results by run / date / latest with changes, saved screens,
replays, auth, 422s naming the field, and responses that match the published schema."""
import datetime as dt
import json

import jsonschema
import pandas as pd
import pytest

from scanner.models import ScanReplay, ScanRun
from tests.scanner.conftest import rising

pytestmark = pytest.mark.django_db

API = "/api/v1/scanner"
N = 30
DAYS = pd.bdate_range("2023-01-02", periods=N).date
PARAMS = {"filters": {}, "window": 5, "within": 0}


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def post(client, path, body, token):
    return client.post(f"{API}{path}", body, content_type="application/json", **bearer(token))


@pytest.fixture
def highs(universe):
    """UP rises all along; LATE slides then rises from row 20; GONE rises then slides from row 20."""
    return universe("TEST", {"UP": rising(N), "LATE": rising(20, 10.0, -0.01) + rising(10, 10.1),
                             "GONE": rising(20) + rising(10, 9.0, -0.01)})


def scan(client, token, django_capture_on_commit_callbacks, **body):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "/scan", {"screen": "high_52w", "universe": "TEST", "params": PARAMS, **body}, token)
    assert response.status_code == 202, response.content
    return response.json()


def test_a_scan_answers_202_with_the_queued_run_then_runs_when_the_request_commits(
        client, alice_write, highs, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = post(client, "/scan", {"screen": "high_52w", "universe": "test", "as_of": "2023-02-10",
                                          "params": PARAMS}, alice_write)
    assert response.status_code == 202
    run = response.json()
    assert (run["status"], run["screen"], run["universe"], run["requested_by"]) == ("queued", "high_52w", "TEST", "alice")
    assert run["requested_as_of"] == "2023-02-10" and len(queued) == 1
    body = client.get(f"{API}/results?run={run['id']}", **bearer(alice_write)).json()
    assert body["run"]["status"] == "success"
    # Scored by the 5-session return: LATE 11.0 / 10.5 - 1 = 4.76%, UP 12.9 / 12.4 - 1 = 4.03%.
    assert [(h["rank"], h["symbol"]) for h in body["hits"]] == [(1, "LATE"), (2, "UP")]
    assert body["hits"][0]["score"] == pytest.approx(11.0 / 10.5 - 1)
    assert body["hits"][1]["metrics"]["high_5"] == pytest.approx(12.9)
    hit = body["hits"][0]
    assert set(hit) == {"rank", "key", "symbol", "exchange", "name", "currency", "score", "metrics", "sparkline",
                        "setup_url"}
    assert hit["setup_url"].startswith("/scanner/hits/")
    assert [f["rule"] for f in body["run"]["funnel"]] == ["universe", "data", "history", "near_high"]
    assert body["run"]["sessions"] == {"XNYS": "2023-02-10"}


def test_results_default_to_the_latest_run_and_say_what_changed(client, alice_read, alice_write, highs,
                                                                  django_capture_on_commit_callbacks):
    first = scan(client, alice_write, django_capture_on_commit_callbacks, as_of=DAYS[18].isoformat())
    second = scan(client, alice_write, django_capture_on_commit_callbacks)
    latest = client.get(f"{API}/results", **bearer(alice_read)).json()
    assert latest["run"]["id"] == second["id"] and latest["run"]["as_of"] == DAYS[-1].isoformat()
    assert latest["changes"]["previous_run"] == first["id"]
    assert [i["symbol"] for i in latest["changes"]["new"]] == ["LATE"]
    assert [i["key"] for i in latest["changes"]["dropped"]] == ["XNYS:GONE"]
    # as_of: the latest run as of that date or the nearest before it.
    older = client.get(f"{API}/results?as_of={DAYS[25].isoformat()}", **bearer(alice_read)).json()
    assert older["run"]["id"] == first["id"] and older["changes"]["previous_run"] is None
    assert client.get(f"{API}/results?screen=high_52w&universe=test", **bearer(alice_read)).json()["run"]["id"] == second["id"]


def test_results_default_to_the_scan_run_last_not_the_one_with_the_latest_date(
        client, alice_read, alice_write, highs, django_capture_on_commit_callbacks):
    # Alice scans today's data, then looks back at an older session: the older scan is what she ran last.
    today = scan(client, alice_write, django_capture_on_commit_callbacks)
    looked_back = scan(client, alice_write, django_capture_on_commit_callbacks, as_of=DAYS[18].isoformat())
    latest = client.get(f"{API}/results", **bearer(alice_read)).json()
    assert latest["run"]["id"] == looked_back["id"] and latest["run"]["as_of"] == DAYS[18].isoformat()
    # ?as_of= still picks by date: the run as of that date or the nearest session before.
    assert client.get(f"{API}/results?as_of={DAYS[-1].isoformat()}", **bearer(alice_read)).json()["run"]["id"] == (
        today["id"])
    # The page opens on the same run.
    client.force_login(ScanRun.objects.get(pk=today["id"]).requested_by)
    assert f"Run #{looked_back['id']} by alice" in client.get("/scanner/").content.decode()


def test_overrides_given_to_the_api_merge_into_the_defaults(client, alice_write, highs,
                                                           django_capture_on_commit_callbacks):
    run = scan(client, alice_write, django_capture_on_commit_callbacks,
               params={"window": 5, "filters": {"sectors": ["Information Technology"]}})
    # Before: filters were replaced, so min_price and min_dollar_volume were stored empty.
    assert run["params"]["filters"]["min_price"] == {"USD": 5.0, "AUD": 1.0}
    assert run["params"]["filters"]["min_dollar_volume"] == {"USD": 20e6, "AUD": 5e6}


def test_unknown_runs_and_no_runs_are_404s(client, alice_read):
    response = client.get(f"{API}/results", **bearer(alice_read))
    assert response.status_code == 404 and response.json() == {"detail": "no successful scan yet"}
    response = client.get(f"{API}/results?run=999", **bearer(alice_read))
    assert response.status_code == 404 and response.json() == {"detail": "no scan run with id 999"}
    assert client.get(f"{API}/replays/999", **bearer(alice_read)).status_code == 404


def test_a_failed_run_is_answered_with_its_error_and_no_hits(client, alice_write, highs, make_bars,
                                                             django_capture_on_commit_callbacks):
    make_bars("UP", "XNYS", [(dt.date(2023, 2, 13), 1, 1, 1, 1, 1)])  # the panels are now stale
    run = scan(client, alice_write, django_capture_on_commit_callbacks)
    body = client.get(f"{API}/results?run={run['id']}", **bearer(alice_write)).json()
    assert body["run"]["status"] == "failed" and "manage.py panels --exchange XNYS" in body["run"]["error"]
    assert body["hits"] == []


@pytest.mark.parametrize("body, loc, message", [
    ({"screen": "nope", "universe": "TEST"}, ["body", "payload", "screen"], "unknown screen 'nope'"),
    ({"screen": "high_52w", "universe": "NOPE"}, ["body", "payload", "universe"], "unknown universe 'NOPE'"),
    ({"screen": "high_52w", "universe": "TEST", "params": {"within": -1}}, ["body", "payload", "params", "within"],
     "within: Input should be greater than or equal to 0"),
    ({"screen": "high_52w", "universe": "TEST", "as_of": "2023-02-30"}, ["body", "payload", "as_of"], "date"),
])
def test_bad_input_is_a_422_naming_the_field(client, alice_write, highs, body, loc, message):
    response = post(client, "/scan", body, alice_write)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == loc and message in problem["msg"]
    assert not ScanRun.objects.exists()


def test_a_read_only_token_cannot_start_a_scan_and_no_credentials_is_401(client, alice_read, highs):
    response = post(client, "/scan", {"screen": "high_52w", "universe": "TEST"}, alice_read)
    assert response.status_code == 403 and "read-only" in response.json()["detail"]
    assert client.get(f"{API}/results").status_code == 401
    assert not ScanRun.objects.exists()


def test_a_logged_in_trader_may_scan_with_the_csrf_token(client, alice, highs, django_capture_on_commit_callbacks):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    refused = browser.post(f"{API}/scan", {"screen": "high_52w", "universe": "TEST"}, content_type="application/json")
    assert refused.status_code == 403  # no CSRF token
    browser.get("/scanner/")
    token = browser.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"{API}/scan", {"screen": "high_52w", "universe": "TEST", "params": PARAMS},
                                content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202


def test_screens_lists_the_built_in_defaults_and_the_saved_ones(client, alice_read):
    body = client.get(f"{API}/screens", **bearer(alice_read)).json()
    screens = {s["key"]: s for s in body["screens"]}
    assert list(screens) == ["momentum_breakout", "high_52w", "relative_strength"]
    momentum = screens["momentum_breakout"]["defaults"]
    assert momentum["return_windows"] == [21, 63, 126] and momentum["ma_windows"] == [10, 20, 50]
    assert momentum["filters"]["min_price"] == {"USD": 5.0, "AUD": 1.0}
    assert screens["relative_strength"]["defaults"]["benchmark"] == {"XASX": "XASX:XJO", "XNYS": "equal_weight"}
    assert "top_percent" in screens["momentum_breakout"]["params_schema"]["properties"]
    assert [s["name"] for s in body["saved"]] == ["momentum-asx", "momentum-us"]


def test_a_screen_can_be_saved_and_a_bad_one_is_a_422(client, alice_write, highs):
    response = post(client, "/screens", {"name": "highs-5", "screen": "high_52w", "universe": "TEST",
                                          "params": {"window": 5}, "daily": False}, alice_write)
    assert response.status_code == 201
    assert response.json() == {"name": "highs-5", "screen": "high_52w", "screen_label": "52-week high",
                               "universe": "TEST", "params": {"window": 5}, "daily": False, "description": ""}
    response = post(client, "/screens", {"name": "x", "screen": "high_52w", "universe": "TEST",
                                          "params": {"window": 0}}, alice_write)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "params", "window"]


def test_a_replay_answers_202_and_its_result_is_read_by_id(client, alice_write, highs,
                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "/replay", {"screen": "high_52w", "universe": "TEST", "start": DAYS[10].isoformat(),
                                            "end": DAYS[-1].isoformat(), "params": PARAMS, "horizons": [1, 5]},
                        alice_write)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    replay = client.get(f"{API}/replays/{response.json()['id']}", **bearer(alice_write)).json()
    assert replay["status"] == "success", replay["error"]
    assert replay["summary"]["sessions"] == 20 and replay["horizons"] == [1, 5]
    assert {h["sessions"] for h in replay["summary"]["horizons"]} == {1, 5}
    assert replay["hits"] and set(replay["hits"][0]) == {"date", "key", "instrument", "score", "fwd_1", "fwd_5"}
    response = post(client, "/replay", {"screen": "high_52w", "universe": "TEST", "start": "2023-02-01",
                                        "end": "2023-01-01"}, alice_write)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "payload", "start"]
    assert ScanReplay.objects.count() == 1


def test_the_responses_match_the_published_schema(client, alice_client, alice_write, highs,
                                                   django_capture_on_commit_callbacks, openapi_spec):
    run = scan(client, alice_write, django_capture_on_commit_callbacks)
    spec = openapi_spec
    assert {f"{API}/scan", f"{API}/results", f"{API}/runs", f"{API}/screens", f"{API}/replay",
            f"{API}/replays/{{replay_id}}"} <= set(spec["paths"])
    ref = spec["paths"][f"{API}/results"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    body = client.get(f"{API}/results?run={run['id']}", **bearer(alice_write))
    parsed = json.loads(body.content, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    jsonschema.validate(parsed, {**ref, "components": spec["components"]})
    # The history metric is a count, the sparkline a list of numbers or nulls: never NaN.
    assert all(isinstance(v, (float, int)) or v is None for h in parsed["hits"] for v in h["sparkline"])
    runs = client.get(f"{API}/runs?screen=high_52w", **bearer(alice_write)).json()
    assert runs["count"] == 1 and runs["items"][0]["id"] == run["id"]


def test_another_trader_s_runs_and_replays_answer_404_and_are_not_listed(client, alice, bob, highs):
    from parakeet.models import ApiToken
    from scanner import services

    run = services.scan(screen="high_52w", universe="TEST", params=PARAMS, requested_by=alice)
    replay = services.start_replay(screen="high_52w", universe="TEST", start=DAYS[10], end=DAYS[-1],
                                   requested_by=alice)
    token = ApiToken(user=bob, name="bob read", scope="read")
    raw = token.issue()
    token.save()
    assert client.get(f"{API}/results?run={run.pk}", **bearer(raw)).status_code == 404
    assert client.get(f"{API}/replays/{replay.pk}", **bearer(raw)).status_code == 404
    assert client.get(f"{API}/runs", **bearer(raw)).json()["items"] == []
    # Her latest run is not his "latest": he has none yet.
    assert client.get(f"{API}/results", **bearer(raw)).status_code == 404
    desk = services.scan(screen="high_52w", universe="TEST", params=PARAMS)  # a command's run: the desk's
    assert client.get(f"{API}/results", **bearer(raw)).json()["run"]["id"] == desk.pk
