"""Strategy pages through the test client: the generated forms, a run from the form, the run page with its
charts and metric links, the survivorship flag, compare, sweeps and the metric definitions."""
import json
import re
from urllib.parse import quote

import numpy as np
import pytest
from django.core.management import call_command

from strategies.models import BacktestRun, BacktestSweep
from strategies.views import METRICS
from tests.marketdata.test_charts import decode

pytestmark = pytest.mark.django_db

COMMON = {"universe": "SP500", "start": "2014-01-02", "end": "2016-12-30", "fill": "close", "commission_bps": "5",
          "commission_min": "1", "slippage_bps": "5", "capital": "100000", "fractional_shown": "1", "fractional": "1"}


def text(response):
    return response.content.decode()


def charts(response):
    found = re.findall(r'<script type="application/json" id="([\w-]+)">(.*?)</script>', text(response), re.S)
    return {chart_id: json.loads(body) for chart_id, body in found}


def run_from_form(client, capture, strategy, **params):
    with capture(execute=True):
        response = client.post("/strategies/run/", {**COMMON, "strategy": strategy,
                                                    **{f"p_{k}": v for k, v in params.items()}})
    return response


@pytest.mark.parametrize("url", ["/strategies/", "/backtests/", "/backtests/compare/", "/strategies/metrics/",
                                 "/backtests/1/", "/sweeps/1/"])
def test_anonymous_users_are_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={quote(url)}"


def test_the_catalog_has_a_form_generated_from_each_parameter_model(alice_client, desk):
    body = text(alice_client.get("/strategies/"))
    for name in ("buy_and_hold", "moving_average", "momentum", "dual_momentum", "breakout", "olmar"):
        assert f'<input type="hidden" name="strategy" value="{name}">' in body
    # top_n: integer 1..200, default 20, with its help text; weighting: a select of its two values.
    assert re.search(r'<input type="number" name="p_top_n" step="1" min="1" max="200" value="20">', body)
    assert "How many names to hold" in body
    assert re.search(r'<select name="p_weighting"><option value="equal" selected>equal</option>'
                     r'<option value="inverse_vol">inverse_vol</option></select>', body)
    # The breakout's setup parameters are the scanner's, one field each.
    assert re.search(r'name="p_max_below_high" step="any" min="0" max="1" value="0.15"', body)
    assert '<input type="text" name="p_return_windows" value="21,63,126" maxlength="64">' in body
    assert "Stored prices: XNYS 2013-01-02 to 2016-12-30; without dates a run covers its universe's own." in body
    assert 'href="/strategies/"' in body and "aria-current" in body


def test_a_form_run_lands_on_its_page_with_charts_metrics_and_trades(alice_client, desk,
                                                                     django_capture_on_commit_callbacks):
    response = run_from_form(alice_client, django_capture_on_commit_callbacks, "momentum", top_n="2",
                             lookback_months="6", weighting="inverse_vol")
    run = BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/backtests/{run.pk}/"
    assert run.status == "success" and run.params["strategy"]["weighting"] == "inverse_vol"
    assert run.requested_by.username == "alice"
    page = alice_client.get(response["Location"])
    body = text(page)
    figures = charts(page)
    assert set(figures) == {"equity-chart", "drawdown-chart", "monthly-chart", "rolling-chart"}
    # Equity against the benchmark, with the Linear / Log toggle.
    assert [t["name"] for t in figures["equity-chart"]["data"]] == ["Strategy", "Benchmark (equal-weight buy and hold)"]
    buttons = figures["equity-chart"]["layout"]["updatemenus"][0]["buttons"]
    assert [b["args"][0]["yaxis.type"] for b in buttons] == ["linear", "log"]
    assert figures["monthly-chart"]["data"][0]["type"] == "heatmap"
    for _, label, anchor, _ in METRICS:
        assert f'<a href="/strategies/metrics/#{anchor}">{label}</a>' in body
    assert "Survivorship-biased universe" not in body and "point-in-time members of SP500" in body
    assert f"{run.metrics['strategy']['values']['sharpe']:.2f}" in body
    assert "Bias check" in body and "Closed round trips" in body
    assert body.count('<tr><td class="nowrap">') >= 10  # trades listed


def test_a_run_over_todays_members_shows_the_survivorship_flag(alice_client, desk, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/strategies/run/", {**COMMON, "universe": "SP500:current", "strategy": "buy_and_hold"})
    run = BacktestRun.objects.get()
    body = text(alice_client.get(f"/backtests/{run.pk}/"))
    assert "Survivorship-biased universe." in body and "today&#x27;s members" in body
    assert 'badge warn" title="survivorship-biased"' in text(alice_client.get("/strategies/"))


def test_a_bad_form_is_shown_again_with_the_field_named(alice_client, desk):
    response = alice_client.post("/strategies/run/", {**COMMON, "strategy": "momentum", "p_top_n": "0"})
    assert response.status_code == 400
    body = text(response)
    assert '<span class="field-error">Input should be greater than or equal to 1</span>' in body
    assert "<strong>top_n</strong>" in body
    response = alice_client.post("/strategies/run/", {**COMMON, "strategy": "momentum", "start": "2014-13-01"})
    assert response.status_code == 400 and "<strong>start</strong>: &#x27;2014-13-01&#x27; is not a date" in text(response)
    assert not BacktestRun.objects.exists()


def test_compare_puts_runs_side_by_side(alice_client, desk, django_capture_on_commit_callbacks):
    run_from_form(alice_client, django_capture_on_commit_callbacks, "buy_and_hold")
    run_from_form(alice_client, django_capture_on_commit_callbacks, "moving_average", fast="20", slow="100")
    ids = list(BacktestRun.objects.order_by("id").values_list("id", flat=True))
    response = alice_client.get(f"/backtests/compare/?ids={ids[0]}&ids={ids[1]}")
    figure = charts(response)["compare-chart"]
    assert [t["name"] for t in figure["data"]] == [f"#{ids[0]} buy_and_hold", f"#{ids[1]} moving_average"]
    assert figure["layout"]["yaxis"]["type"] == "log"
    body = text(response)
    assert '<a href="/strategies/metrics/#sharpe">Sharpe</a>' in body
    empty = text(alice_client.get("/backtests/compare/?ids=999"))
    assert "None of the runs asked for (999) finished successfully." in empty


def test_every_metric_link_has_its_definition(alice_client):
    body = text(alice_client.get("/strategies/metrics/"))
    anchors = set(re.findall(r'<tr id="([\w-]+)">', body))
    assert {anchor for _, _, anchor, _ in METRICS} | {"probabilistic-sharpe-psr", "bias-check", "walk-forward",
                                                      "deflated-sharpe-dsr"} <= anchors
    assert "full-sample" in body  # Sortino's convention, from docs/metrics.md


def test_a_sweep_from_the_form_shows_a_sharpe_heatmap(alice_client, desk, django_capture_on_commit_callbacks):
    form = {**COMMON, "universe": "AAPL", "commission_min": "0", "strategy": "moving_average",
            "x_param": "fast", "x_values": "10, 20, 50", "y_param": "slow", "y_values": "100, 150"}
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/strategies/sweep/", form)
    sweep = BacktestSweep.objects.get()
    assert response["Location"] == f"/sweeps/{sweep.pk}/"
    page = alice_client.get(response["Location"])
    heatmap = charts(page)["sweep-chart"]["data"][0]
    assert heatmap["x"] == ["10", "20", "50"] and heatmap["y"] == ["100", "150"]
    results = {(r.params["fast"], r.params["slow"]): r.metrics["sharpe"] for r in sweep.results.all()}
    z = decode(heatmap["z"]).reshape(2, 3) if isinstance(heatmap["z"], dict) else np.asarray(heatmap["z"])
    assert z[1][2] == pytest.approx(results[(50, 150)])
    assert z[0][0] == pytest.approx(results[(10, 100)])
    assert "Deflated Sharpe" in text(page) and "Walk-forward Sharpe" in text(page)
    bad = alice_client.post("/strategies/sweep/", {**form, "x_param": "speed"})
    assert bad.status_code == 400 and "moving_average has no parameter &#x27;speed&#x27;" in text(bad)


def test_the_run_page_of_a_failed_run_says_why(alice_client, desk):
    run = BacktestRun.objects.create(strategy="momentum", universe="SP500", start="2014-01-02", end="2016-12-30",
                                     status="failed", error="XNYS: the panels hold 1 bars")
    body = text(alice_client.get(f"/backtests/{run.pk}/"))
    assert "The run failed:" in body and "XNYS: the panels hold 1 bars" in body


def test_the_command_runs_a_backtest_and_prints_its_metrics(desk, capsys):
    call_command("backtest", "--strategy", "momentum", "--universe", "SP500", "--start", "2014-01-02",
                 "--end", "2016-12-30", "--param", "top_n=2", "--param", "lookback_months=6", "--whole-shares")
    out = capsys.readouterr().out
    run = BacktestRun.objects.get()
    assert f"backtest #{run.pk}: momentum on SP500, 2014-01-02 .. 2016-12-30" in out
    assert f"Sharpe                       {run.metrics['strategy']['values']['sharpe']:.3f}" in out
    assert run.params["engine"]["fractional"] is False and run.params["strategy"]["top_n"] == 2


@pytest.mark.parametrize("args, message", [
    (["--strategy", "momentum", "--param", "top_n=0"], "--param top_n: Input should be greater than or equal to 1"),
    (["--strategy", "momentum", "--param", "top_n"], "--param 'top_n' is not key=value"),
    (["--strategy", "nope"], "--strategy: unknown strategy 'nope'"),
    (["--strategy", "momentum", "--start", "2014-02-30"], "--start '2014-02-30' is not a date"),
    (["--strategy", "momentum", "--slippage-bps", "-2"], "--slippage-bps: slippage_bps must be a number >= 0"),
])
def test_the_command_names_the_bad_option(desk, args, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as caught:
        call_command("backtest", *args)
    assert message in str(caught.value)
    assert not BacktestRun.objects.exists()


def test_the_heavy_pages_keep_a_flat_query_count(alice_client, desk, django_capture_on_commit_callbacks,
                                                django_assert_max_num_queries):
    # Budgets with one run and with four: the lists use select_related, so more rows add no query.
    run_from_form(alice_client, django_capture_on_commit_callbacks, "buy_and_hold")
    run = BacktestRun.objects.get()
    # Session, user, the freshness banner (cached after the first page), universe codes, runs, sweeps.
    with django_assert_max_num_queries(6):
        alice_client.get("/strategies/")
    for strategy in ("buy_and_hold", "buy_and_hold", "buy_and_hold"):
        run_from_form(alice_client, django_capture_on_commit_callbacks, strategy)
    with django_assert_max_num_queries(6):
        alice_client.get("/strategies/")
    with django_assert_max_num_queries(8):
        alice_client.get(f"/backtests/{run.pk}/")
    with django_assert_max_num_queries(8):
        alice_client.get("/backtests/compare/?ids=" + ",".join(str(pk) for pk in BacktestRun.objects.values_list("pk", flat=True)))


def test_another_trader_s_runs_and_sweeps_are_not_found_and_not_listed(client, alice, bob, carol):
    import datetime as dt

    span = {"universe": "AAPL", "start": dt.date(2014, 1, 2), "end": dt.date(2016, 12, 30)}
    hers = BacktestRun.objects.create(strategy="buy_and_hold", requested_by=alice, **span)
    desk = BacktestRun.objects.create(strategy="buy_and_hold", **span)  # a command's run: the desk's
    sweep = BacktestSweep.objects.create(strategy="moving_average", combinations=1, chunks=1, requested_by=alice,
                                         params={"grid": {"fast": [20]}}, **span)
    client.force_login(bob)
    assert client.get(f"/backtests/{hers.pk}/").status_code == 404
    assert client.get(f"/sweeps/{sweep.pk}/").status_code == 404
    assert list(client.get("/backtests/").context["runs"]) == [desk]
    assert list(client.get("/strategies/").context["sweeps"]) == []
    client.force_login(carol)
    assert client.get(f"/backtests/{hers.pk}/").status_code == 200
    assert client.get(f"/sweeps/{sweep.pk}/").status_code == 200
