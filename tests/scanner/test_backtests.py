"""One click from a momentum-breakout scan or replay to a real backtest of the breakout strategy with the
screen's rules: through the pages, on a real S&P 500 slice, run eagerly; who may start one; what is refused."""
import datetime as dt
from urllib.parse import quote

import pandas as pd
import pytest
from django.test import Client

from scanner import services
from scanner.models import ScanRun
from strategies import services as backtests
from strategies.models import BacktestRun
from tests.scanner.conftest import US_AS_OF

pytestmark = pytest.mark.django_db

# The screen's parameters differ from its defaults in top_percent, the averages and the high's window, so
# the mapping is visible: each one lands in its flat field; the entry, stop and book take their defaults.
SCREEN = {"top_percent": 10, "ma_windows": [5, 20, 50], "high_window": 100}
MAPPED = {"return_windows": "21,63,126", "top_percent": 10.0, "require": "any", "ma_fast": 5, "ma_mid": 20,
          "ma_slow": 50, "rising_over": 5, "high_window": 100, "max_below_high": 0.15, "atr_short": 10,
          "atr_long": 50, "max_atr_ratio": 0.9, "base_days": 20, "volume_mult": 1.5, "atr_days": 14,
          "atr_mult": 2.0, "trail_ma": 20, "max_positions": 10}
BUTTON = "Backtest with the breakout strategy"


def test_a_scan_backtests_the_three_years_to_its_date_with_its_rules(alice_client, us_loaded,
                                                                     django_capture_on_commit_callbacks):
    scan = services.scan(screen="momentum_breakout", universe="SP500", as_of=US_AS_OF, params=SCREEN)
    page = alice_client.get(f"/scanner/runs/{scan.pk}/").content.decode()
    assert f'<form method="post" action="/scanner/runs/{scan.pk}/backtest/"' in page and BUTTON in page
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/scanner/runs/{scan.pk}/backtest/")
    run = BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/backtests/{run.pk}/"
    # Three years to the scan's date, but the panels start on 2020-06-01 (the slice): from there.
    assert (run.strategy, run.universe, run.start, run.end) == ("breakout", "SP500", dt.date(2020, 6, 1), US_AS_OF)
    assert run.params["strategy"] == MAPPED
    assert run.params["origin"] == {"kind": "scan", "id": scan.pk, "name": "momentum_breakout",
                                    "screen": "momentum_breakout", "as_of": "2021-04-21"}
    assert run.status == "success", run.error
    assert run.requested_by.username == "alice"
    # The slice holds 24 of the index's ~500 names: the run says it is over the few that have bars.
    assert run.survivorship_biased and "members in the period have no stored bars" in run.universe_note
    # The slice starts on 2020-06-01: that is the first bar the run has.
    assert run.first_bar == dt.date(2020, 6, 1) and run.last_bar == US_AS_OF
    body = alice_client.get(response["Location"]).content.decode()
    assert (f'Started from the scan <a href="/scanner/runs/{scan.pk}/">#{scan.pk}</a> of '
            f'<strong>momentum_breakout</strong> as of 2021-04-21') in body
    assert "ma_fast=5, ma_mid=20, ma_slow=50" in body


def test_a_replay_backtests_its_dates_and_buys_only_what_the_screen_listed_the_session_before(
        alice_client, us_loaded, django_capture_on_commit_callbacks):
    # No filters and every day's hits (not only new ones): the replay lists exactly the names the
    # strategy may buy the next session.
    replay = services.start_replay(screen="momentum_breakout", universe="SP500", start=dt.date(2020, 12, 1),
                                   end=US_AS_OF, params={**SCREEN, "filters": {}}, only_new=False)
    replay = services.run_replay(replay)
    assert replay.status == "success", replay.error
    page = alice_client.get(f"/scanner/replays/{replay.pk}/").content.decode()
    assert f'<form method="post" action="/scanner/replays/{replay.pk}/backtest/"' in page and BUTTON in page
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/scanner/replays/{replay.pk}/backtest/")
    run = BacktestRun.objects.get()
    assert response["Location"] == f"/backtests/{run.pk}/"
    assert (run.start, run.end, run.params["strategy"]) == (dt.date(2020, 12, 1), US_AS_OF, MAPPED)
    assert run.params["origin"] == {"kind": "replay", "id": replay.pk, "name": "momentum_breakout",
                                    "screen": "momentum_breakout"}
    assert run.status == "success", run.error
    listed = {(hit["date"], hit["key"]) for hit in replay.hits}
    sessions = [day for day, *_ in replay.daily]
    trades = backtests.read_artifact(run.trades_path)
    buys = trades[(trades["shares"] > 0) & (pd.to_datetime(trades["decided"]).dt.date > run.first_bar)]
    assert len(buys) >= 1, trades
    for decided, name in zip(pd.to_datetime(buys["decided"]).dt.date, buys["name"]):
        before = sessions[sessions.index(decided.isoformat()) - 1]
        assert (before, name) in listed, (decided, name)
    body = alice_client.get(response["Location"]).content.decode()
    assert f'Started from the replay <a href="/scanner/replays/{replay.pk}/">#{replay.pk}</a>' in body


def test_only_a_logged_in_post_with_its_csrf_token_starts_one(client, alice, us_loaded):
    scan = services.scan(screen="momentum_breakout", universe="SP500", as_of=US_AS_OF)
    url = f"/scanner/runs/{scan.pk}/backtest/"
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={quote(url)}"
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(alice)
    assert guarded.post(url).status_code == 403
    client.force_login(alice)
    assert client.get(url).status_code == 405  # POST only: a GET starts nothing
    assert not BacktestRun.objects.exists()


def test_other_screens_and_mixed_universes_are_refused_naming_why(alice_client, us_loaded):
    scan = services.scan(screen="high_52w", universe="SP500", as_of=US_AS_OF)
    assert BUTTON not in alice_client.get(f"/scanner/runs/{scan.pk}/").content.decode()
    response = alice_client.post(f"/scanner/runs/{scan.pk}/backtest/", follow=True)
    assert response.redirect_chain == [(f"/scanner/runs/{scan.pk}/", 302)]
    assert ("Backtest not started: screen: the breakout strategy uses the momentum breakout&#x27;s rules, not "
            "those of 52-week high") in response.content.decode()
    mixed = ScanRun.objects.create(screen="momentum_breakout", universe="SP500+ASX300", as_of=US_AS_OF,
                                   params={}, status="success")
    page = alice_client.get(f"/scanner/runs/{mixed.pk}/").content.decode()
    assert BUTTON not in page and "backtests one universe at a time; this screen ran over SP500+ASX300" in page
    response = alice_client.post(f"/scanner/runs/{mixed.pk}/backtest/", follow=True)
    assert "universe: a backtest runs over one universe; this screen ran over SP500+ASX300" in response.content.decode()
    assert not BacktestRun.objects.exists()
