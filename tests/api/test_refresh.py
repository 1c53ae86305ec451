"""POST /api/v1/data/refresh starts daily runs (202), and GET /data/runs/{id} shows their steps."""
import datetime as dt

import pytest
import time_machine

from marketdata.models import IngestRun, PriceBar
from tests.marketdata.test_daily import US_EVENING, US_SESSION, preload, server  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

REFRESH = "/api/v1/data/refresh"


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def post(client, body=None, **extra):
    return client.post(REFRESH, body or {}, content_type="application/json", **extra)


def test_a_read_write_token_starts_the_run_and_gets_202_with_its_id(client, alice_write, server,  # noqa: F811
                                                                     django_capture_on_commit_callbacks):
    preload()
    with time_machine.travel(US_EVENING, tick=False), django_capture_on_commit_callbacks(execute=True) as queued:
        response = post(client, {"exchange": "xnys", "session": "2021-04-20"}, **bearer(alice_write))
    assert response.status_code == 202
    [run] = response.json()["runs"]
    assert (run["kind"], run["exchange"], run["session"], run["requested_by"]) == ("daily", "XNYS", "2021-04-20", "alice")
    assert run["status"] == "running"  # answered before the work, which runs when the request commits
    assert len(queued) == 1
    done = client.get(f"/api/v1/data/runs/{run['id']}", **bearer(alice_write)).json()
    assert done["status"] == "success" and done["rows_inserted"] == 3
    assert [(s["step"], s["status"]) for s in done["steps"]] == [("ingest", "ok"), ("panels", "ok")]
    assert done["steps"][0]["detail"]["provider"] == "tiingo"
    assert done["params"]["trigger"] == "api"
    assert PriceBar.objects.filter(date=US_SESSION).count() == 3


def test_without_an_exchange_it_starts_one_run_per_exchange(client, carol, django_capture_on_commit_callbacks,
                                                          monkeypatch):
    ran = []
    monkeypatch.setattr("marketdata.daily.run_daily", lambda **kw: ran.append((kw["exchange"], kw["run"].pk)))
    client.force_login(carol)  # a staff session
    with time_machine.travel(dt.datetime(2024, 3, 11, 23, 0, tzinfo=dt.timezone.utc), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        response = post(client)
    assert response.status_code == 202
    runs = response.json()["runs"]
    # Mon 11 March 2024 23:00 UTC: Monday has closed in Sydney (05:00 UTC) and in New York (20:00 UTC).
    assert [(r["exchange"], r["session"]) for r in runs] == [("XASX", "2024-03-11"), ("XNYS", "2024-03-11")]
    assert sorted(ran) == sorted((r["exchange"], r["id"]) for r in runs)


def test_a_non_session_is_a_422_naming_the_field(client, alice_write):
    response = post(client, {"exchange": "XASX", "session": "2024-03-09"}, **bearer(alice_write))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "payload", "session"]
    assert problem["msg"] == "Sat 2024-03-09 is not an XASX session (the sessions either side are 2024-03-08 and 2024-03-11)"
    assert not IngestRun.objects.exists()


def test_an_exchange_without_a_daily_chain_is_a_422(client, alice_write):
    response = post(client, {"exchange": "XNAS"}, **bearer(alice_write))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "exchange"]


def test_a_read_only_token_gets_403(client, alice_read):
    response = post(client, {"exchange": "XNYS"}, **bearer(alice_read))
    assert response.status_code == 403
    assert "read-only scope" in response.json()["detail"]


def test_a_trader_session_without_staff_gets_403(alice_client):
    response = post(alice_client, {"exchange": "XNYS"})
    assert response.status_code == 403
    assert response.json() == {"detail": "starting a data refresh needs a read_write API token or a staff login"}
    assert not IngestRun.objects.exists()


def test_no_credentials_get_401(client):
    assert post(client, {"exchange": "XNYS"}).status_code == 401


def test_the_runs_list_shows_daily_runs_with_their_steps(client, alice_read):
    IngestRun.objects.create(kind="daily", provider="yahoo", exchange="XASX", session=dt.date(2024, 3, 8),
                             status="failed", errors=["panels: disk full"],
                             steps=[{"step": "ingest", "status": "ok", "seconds": 1.25, "detail": {"inserted": 300}},
                                    {"step": "panels", "status": "failed", "seconds": 0.5,
                                     "detail": {"error": "disk full"}}])
    [run] = client.get("/api/v1/data/runs", **bearer(alice_read)).json()["items"]
    assert (run["kind"], run["exchange"], run["session"], run["status"]) == ("daily", "XASX", "2024-03-08", "failed")
    assert run["steps"][1] == {"step": "panels", "status": "failed", "seconds": 0.5, "detail": {"error": "disk full"}}
