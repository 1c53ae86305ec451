"""The scanner pages: run a scan from the form, read the funnel, the sortable hits and what changed, open a
hit's setup chart, save and delete screens, replay a screen; errors name the field; query budgets."""
import json
import re

import pandas as pd
import pytest

from scanner.models import SavedScreen, ScanReplay, ScanRun
from tests.scanner.conftest import rising

pytestmark = pytest.mark.django_db

N = 30
DAYS = pd.bdate_range("2023-01-02", periods=N).date
PARAMS = json.dumps({"filters": {}, "window": 5, "within": 0})


@pytest.fixture
def highs(universe):
    """UP rises all along; LATE slides then rises from row 20; GONE rises then slides from row 20."""
    return universe("TEST", {"UP": rising(N), "LATE": rising(20, 10.0, -0.01) + rising(10, 10.1),
                             "GONE": rising(20) + rising(10, 9.0, -0.01)})


def run_from_the_form(client, django_capture_on_commit_callbacks, **fields):
    data = {"screen": "high_52w", "universe": "TEST", "params": PARAMS, **fields}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/scanner/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def test_the_scanner_needs_a_login(client):
    response = client.get("/scanner/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_without_a_run_the_page_says_how_to_start(alice_client):
    page = alice_client.get("/scanner/").content.decode()
    assert "No scan yet" in page and "python manage.py scan --screen momentum_breakout --universe SP500" in page
    assert 'href="/scanner/"' in page  # the nav link
    assert "momentum-us" in page  # the saved screens
    assert '<option value="momentum-us" selected>' in page  # the US one first: its universe is the demo's


def test_the_parameter_boxes_are_empty_without_overrides_so_the_placeholder_shows(alice_client):
    for url in ("/scanner/", "/scanner/replays/"):
        page = alice_client.get(url).content.decode()
        box = re.search(r'<textarea name="params"[^>]*>(.*?)</textarea>', page, re.S).group(1)
        assert box == "", (url, box)  # it said null
    # A bad value is shown again as typed.
    page = alice_client.post("/scanner/", {"screen": "high_52w", "params": "{top: 2"}).content.decode()
    assert re.search(r'<textarea name="params"[^>]*>(.*?)</textarea>', page, re.S).group(1) == "{top: 2"


def test_a_scan_from_the_form_shows_its_funnel_hits_and_sparklines(alice_client, highs,
                                                                   django_capture_on_commit_callbacks):
    response = run_from_the_form(alice_client, django_capture_on_commit_callbacks, as_of=DAYS[-1].isoformat())
    run = ScanRun.objects.get()
    assert response["Location"] == f"/scanner/runs/{run.pk}/"
    page = alice_client.get(response["Location"]).content.decode()
    assert "high_52w" in page and "as of 2023-02-10" in page and "Data: XNYS through 2023-02-10" in page
    # Funnel: 3 members, 3 with data, 3 with 6 closes, 2 at their 5-session high.
    funnel = re.findall(r'<span class="rule">(.*?)</span>.*?<strong>(\d+)</strong>', page, re.S)
    assert [(label.split(" ")[0], int(n)) for label, n in funnel] == [
        ("Member", 3), ("Has", 3), ("At", 3), ("Close", 2)]
    hit_links = re.findall(r'href="/scanner/hits/(\d+)/"><strong>(\w+)</strong>', page)
    assert [symbol for _, symbol in hit_links] == ["LATE", "UP"]
    assert page.count('<svg class="spark"') == 2 and "+4.76%" in page  # LATE: 11.0 / 10.5 - 1


def test_the_hits_table_sorts_by_any_column(alice_client, highs, django_capture_on_commit_callbacks):
    run_from_the_form(alice_client, django_capture_on_commit_callbacks)
    run = ScanRun.objects.get()
    page = alice_client.get(f"/scanner/runs/{run.pk}/?sort=price&dir=desc").content.decode()
    # Close as traded: UP 12.9, LATE 11.0.
    assert re.findall(r'<strong>(\w+)</strong></a> <span class="muted small">XNYS', page) == ["UP", "LATE"]
    assert 'aria-sort="descending"' in page
    page = alice_client.get(f"/scanner/runs/{run.pk}/?sort=price&dir=asc").content.decode()
    assert re.findall(r'<strong>(\w+)</strong></a> <span class="muted small">XNYS', page) == ["LATE", "UP"]
    assert alice_client.get(f"/scanner/runs/{run.pk}/?sort=nonsense").status_code == 200


def test_the_page_shows_what_changed_since_the_previous_run(alice_client, highs, django_capture_on_commit_callbacks):
    run_from_the_form(alice_client, django_capture_on_commit_callbacks, as_of=DAYS[18].isoformat())
    response = run_from_the_form(alice_client, django_capture_on_commit_callbacks)
    page = alice_client.get(response["Location"]).content.decode()
    section = page[page.index("Since the previous run"):page.index('id="hits"')]
    assert "1 new</span> <a href=\"/instruments/XNYS:LATE/\">LATE</a>" in section
    assert "1 dropped</span> <a href=\"/instruments/XNYS:GONE/\">GONE</a>" in section


@pytest.mark.parametrize("fields, message", [
    ({"universe": "NOPE"}, "universe: unknown universe &#x27;NOPE&#x27;"),
    ({"params": "{not json"}, "params: Enter a valid JSON."),
    ({"params": "[1, 2]"}, "params: give an object"),
    ({"as_of": "31/01/2023"}, "as_of: Enter a valid date."),
    ({"params": '{"window": 0}'}, "params.window: window: Input should be greater than 0"),
])
def test_a_bad_form_is_shown_again_naming_the_field(alice_client, highs, fields, message):
    response = alice_client.post("/scanner/", {"screen": "high_52w", "universe": "TEST", **fields})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ScanRun.objects.exists()


def test_a_failed_run_says_why(alice_client, highs, make_bars, django_capture_on_commit_callbacks):
    make_bars("UP", "XNYS", [(DAYS[-1] + pd.Timedelta(days=3), 1, 1, 1, 1, 1)])  # stale panels
    response = run_from_the_form(alice_client, django_capture_on_commit_callbacks)
    page = alice_client.get(response["Location"]).content.decode()
    assert "The scan failed:" in page and "run `manage.py panels --exchange XNYS`" in page


def test_a_hit_opens_its_chart_with_the_setup_marked_and_explained(alice_client, highs,
                                                                   django_capture_on_commit_callbacks):
    run_from_the_form(alice_client, django_capture_on_commit_callbacks)
    hit = ScanRun.objects.get().hits.get(rank=1)
    response = alice_client.get(f"/scanner/hits/{hit.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "LATE" in page and "#1 of 2" in page and 'href="/instruments/XNYS:LATE/"' in page
    figure = json.loads(re.search(r'<script type="application/json" id="setup-chart">(.*?)</script>', page, re.S)[1])
    names = [trace.get("name") for trace in figure["data"]]
    assert "Price" in names and "5-session high" in names
    high = next(t for t in figure["data"] if t.get("name") == "5-session high")
    assert high["y"] == [pytest.approx(11.0), pytest.approx(11.0)]
    assert any(shape.get("x0") == "2023-02-10" for shape in figure["layout"]["shapes"])  # the scan's session
    assert "5-session high" in page and "<td>Below that high</td><td class=\"num\">0.00%</td>" in page


def test_saving_running_and_deleting_a_screen(alice_client, client, carol, highs, django_capture_on_commit_callbacks):
    response = alice_client.post("/scanner/screens/", {"name": "highs-5", "screen": "high_52w", "universe": "TEST",
                                                       "params": PARAMS, "daily": "1"})
    assert response.status_code == 302 and response["Location"] == "/scanner/?screen=highs-5"
    saved = SavedScreen.objects.get(name="highs-5")
    assert (saved.screen, saved.universe, saved.daily, saved.params["window"]) == ("high_52w", "TEST", True, 5)
    page = alice_client.get("/scanner/?screen=highs-5").content.decode()
    assert "Saved screen highs-5 (runs daily after ingest)." in page
    run_from_the_form(alice_client, django_capture_on_commit_callbacks, screen="highs-5", universe="", params="")
    assert ScanRun.objects.get().saved_screen == saved
    # Only its creator or staff delete it: alice made it; the default ones are staff's.
    assert alice_client.post("/scanner/screens/momentum-us/delete/").status_code == 403
    assert alice_client.post("/scanner/screens/highs-5/delete/").status_code == 302
    assert not SavedScreen.objects.filter(name="highs-5").exists()
    assert ScanRun.objects.get().saved_screen is None  # the run stays
    client.force_login(carol)
    assert client.post("/scanner/screens/momentum-us/delete/").status_code == 302


def test_a_run_saved_from_its_page_runs_again_with_exactly_its_parameters(alice_client, highs,
                                                                          django_capture_on_commit_callbacks):
    run_from_the_form(alice_client, django_capture_on_commit_callbacks,
                      params=json.dumps({"window": 5, "filters": {"min_price": {"AUD": None}, "sectors": ["Energy"]}}))
    run = ScanRun.objects.get()
    page = alice_client.get(f"/scanner/runs/{run.pk}/").content.decode()
    posted = re.search(r'<textarea name="params" hidden>(.*?)</textarea>', page, re.S).group(1).replace("&quot;", '"')
    assert json.loads(posted) == {"filters": {"min_price": {"AUD": None}, "sectors": ["Energy"]}, "window": 5}
    alice_client.post("/scanner/screens/", {"name": "energy-highs", "screen": run.screen, "universe": run.universe,
                                            "params": posted, "daily": "1"})
    run_from_the_form(alice_client, django_capture_on_commit_callbacks, screen="energy-highs", universe="", params="")
    again = ScanRun.objects.filter(saved_screen__name="energy-highs").get()
    assert again.params == run.params and again.params["filters"]["min_price"] == {"USD": 5.0}
    page = alice_client.get(f"/scanner/runs/{again.pk}/").content.decode()
    assert "No date asked: the latest session the data holds." in page and "Asked for" not in page


def test_a_bad_screen_to_save_is_refused_with_a_message(alice_client, highs):
    response = alice_client.post("/scanner/screens/", {"name": "Bad Name", "screen": "high_52w", "universe": "TEST"},
                                 follow=True)
    assert "Not saved: name: name &#x27;bad name&#x27;: lower-case letters" in response.content.decode()


def test_backtest_this_screen_replays_it_and_shows_the_forward_returns(alice_client, highs,
                                                                       django_capture_on_commit_callbacks):
    run_from_the_form(alice_client, django_capture_on_commit_callbacks, as_of=DAYS[20].isoformat())
    run = ScanRun.objects.get()
    page = alice_client.get(f"/scanner/runs/{run.pk}/").content.decode()
    assert f'href="/scanner/replays/?run={run.pk}"' in page
    # The form proposes the run's screen, universe and parameters, over the years up to its as-of date
    # (2023-01-30), from the first date the panels hold (2023-01-02: less than 3 years of data).
    form = alice_client.get(f"/scanner/replays/?run={run.pk}").content.decode()
    assert 'value="TEST"' in form and '<option value="high_52w" selected>' in form
    assert 'name="start" value="2023-01-02"' in form and 'name="end" value="2023-01-30"' in form
    overrides = re.search(r'<textarea name="params"[^>]*>(.*?)</textarea>', form, re.S).group(1)
    # PARAMS said {"filters": {}}: no price or traded-value minimum, the two that differ from the defaults.
    assert json.loads(overrides.replace("&quot;", '"')) == {
        "filters": {"min_price": {}, "min_dollar_volume": {}}, "window": 5, "within": 0}
    # Without a run: up to the latest session the panels hold.
    form = alice_client.get("/scanner/replays/?screen=high_52w&universe=TEST").content.decode()
    assert 'name="start" value="2023-01-02"' in form and 'name="end" value="2023-02-10"' in form
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/scanner/replays/", {
            "screen": "high_52w", "universe": "TEST", "start": DAYS[10].isoformat(), "end": DAYS[-1].isoformat(),
            "horizons": "1,5", "only_new": "1", "params": PARAMS})
    replay = ScanReplay.objects.get()
    assert response["Location"] == f"/scanner/replays/{replay.pk}/" and replay.status == "success", replay.error
    page = alice_client.get(response["Location"]).content.decode()
    assert "How the hits did afterwards" in page and "1 sessions" in page and "5 sessions" in page
    assert 'id="replay-returns"' in page and 'id="replay-daily"' in page
    # Its parameters as JSON, as on a run's page (not a Python dict).
    assert '&quot;window&quot;: 5' in page and "&#x27;window&#x27;" not in page
    assert "Benchmark" not in page
    listing = alice_client.get("/scanner/replays/").content.decode()
    assert f'href="/scanner/replays/{replay.pk}/"' in listing


def test_a_replay_lists_its_latest_hits_first_and_each_day_s_best_first(alice_client, highs,
                                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/scanner/replays/", {
            "screen": "high_52w", "universe": "TEST", "start": DAYS[20].isoformat(), "end": DAYS[-1].isoformat(),
            "horizons": "1", "params": PARAMS})  # only_new unchecked: every day on the list counts
    page = alice_client.get(response["Location"]).content.decode()
    rows = re.findall(r'<td class="nowrap">(\d{4}-\d\d-\d\d)</td><td><a [^>]*>[^<]*</a></td><td class="num">([\d.-]+)</td>',
                      page)
    shown = [(day, float(score)) for day, score in rows]
    assert len({day for day, _ in shown}) < len(shown)  # some days have several hits
    # It listed the lowest score of the latest day first.
    assert shown == sorted(shown, reverse=True)


def test_a_bad_replay_form_names_the_field(alice_client, highs):
    response = alice_client.post("/scanner/replays/", {"screen": "high_52w", "universe": "TEST", "start": "2023-02-01",
                                                       "end": "2023-01-01", "horizons": "5"})
    assert response.status_code == 400 and "start: start 2023-02-01 is after end 2023-01-01" in response.content.decode()
    response = alice_client.post("/scanner/replays/", {"screen": "high_52w", "start": "2023-01-01",
                                                       "end": "2023-02-01", "horizons": "five"})
    assert response.status_code == 400 and "horizons: whole numbers of sessions" in response.content.decode()


def test_the_scanner_page_costs_the_same_queries_with_more_hits(alice_client, universe,
                                                                django_capture_on_commit_callbacks,
                                                                django_assert_max_num_queries):
    universe("TEST", {f"N{i:02d}": rising(N, 10 + i) for i in range(25)})
    run_from_the_form(alice_client, django_capture_on_commit_callbacks)
    run_from_the_form(alice_client, django_capture_on_commit_callbacks)
    run = ScanRun.objects.latest("id")
    assert run.hit_count == 25
    with django_assert_max_num_queries(14):  # 10 measured (session, user, run, hits, saved, recent...) + changes
        assert alice_client.get(f"/scanner/runs/{run.pk}/").status_code == 200
    hit = run.hits.get(rank=1)
    with django_assert_max_num_queries(6):  # 5 measured
        assert alice_client.get(f"/scanner/hits/{hit.pk}/").status_code == 200


def test_the_admin_refuses_a_saved_screen_that_cannot_run(admin_client_, highs):
    url = "/admin/scanner/savedscreen/add/"
    response = admin_client_.post(url, {"name": "x", "screen": "high_52w", "universe": "NOPE", "params": "{}"})
    assert response.status_code == 200 and "unknown universe &#x27;NOPE&#x27;" in response.content.decode()
    response = admin_client_.post(url, {"name": "x", "screen": "high_52w", "universe": "test",
                                        "params": '{"window": -1}', "daily": "on"})
    assert "window: Input should be greater than 0" in response.content.decode()
    response = admin_client_.post(url, {"name": "x", "screen": "high_52w", "universe": "test",
                                        "params": '{"window": 5}', "daily": "on"})
    assert response.status_code == 302
    assert SavedScreen.objects.get(name="x").universe == "TEST"


def test_another_trader_s_run_hit_and_replay_are_not_found_and_not_listed(alice_client, bob, highs,
                                                                          django_capture_on_commit_callbacks):
    from django.test import Client

    from scanner import services

    run_from_the_form(alice_client, django_capture_on_commit_callbacks)
    run = ScanRun.objects.get()
    hit = run.hits.first()
    replay = services.start_replay(screen="high_52w", universe="TEST", start=DAYS[10], end=DAYS[-1],
                                   requested_by=run.requested_by)
    desk = services.scan(screen="high_52w", universe="TEST", params={"filters": {}, "window": 5, "within": 0})
    client = Client()
    client.force_login(bob)
    for url in (f"/scanner/runs/{run.pk}/", f"/scanner/hits/{hit.pk}/", f"/scanner/replays/{replay.pk}/",
                f"/scanner/replays/?run={run.pk}"):
        response = client.get(url)
        assert response.status_code == (200 if "?run=" in url else 404), url
    # The form is not pre-filled from her run, and neither list names it; the desk's run (no requester) he sees.
    assert f'value="{run.as_of}"' not in client.get(f"/scanner/replays/?run={run.pk}").content.decode()
    page = client.get("/scanner/")
    assert page.context["run"] == desk and list(page.context["recent"]) == [desk]
    assert list(client.get("/scanner/replays/").context["replays"]) == []
    assert alice_client.get(f"/scanner/runs/{run.pk}/").status_code == 200
