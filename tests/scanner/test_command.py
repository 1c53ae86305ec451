"""`manage.py scan`: one screen, the daily saved screens, parameters, errors that name the field, replays."""
import datetime as dt
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from scanner.management.commands.scan import parse_params
from scanner.models import ScanReplay, ScanRun
from tests.scanner.conftest import rising

pytestmark = pytest.mark.django_db

N = 30
DAYS = pd.bdate_range("2023-01-02", periods=N).date


@pytest.fixture
def highs(universe):
    return universe("TEST", {"UP": rising(N), "LATE": rising(20, 10.0, -0.01) + rising(10, 10.1),
                             "GONE": rising(20) + rising(10, 9.0, -0.01)})


def scan(*args):
    out = StringIO()
    call_command("scan", *args, stdout=out)
    return out.getvalue()


def test_it_scans_one_screen_and_prints_the_funnel_and_the_hits(highs):
    out = scan("--screen", "high_52w", "--universe", "test", "--as-of", "2023-02-10", "--param", "window=5",
               "--param", "within=0", "--param", "filters={}")
    run = ScanRun.objects.get()
    lines = out.splitlines()
    assert lines[0].startswith(f"high_52w (52-week high) TEST as of 2023-02-10 (data: XNYS 2023-02-10): 2 hits; "
                               f"run #{run.pk} in ")
    assert lines[1:5] == ["       3  Member of the universe on the date",
                          "       3  Has a usable (not quarantined, > 0) close on the session",
                          "       3  At least 6 valid closes in the last 11 sessions, under the current code",
                          "       2  Close within 0% of the 5-session high"]
    assert lines[5].startswith("  #1   XNYS:LATE    score    0.048") and "ret_5 +4.76%" in lines[5]
    assert lines[6].startswith("  #2   XNYS:UP ")


def test_without_a_screen_it_runs_every_daily_saved_screen(highs):
    from scanner.services import save_screen

    save_screen(name="highs", screen="high_52w", universe="TEST", params={"window": 5, "filters": {}})
    # The two default screens' universes are not loaded: they are named at the end, after the others ran.
    with pytest.raises(CommandError, match=r"^scan failed: momentum-asx: universe: unknown universe 'ASX300' "
                                           r"\(known: TEST\); momentum-us: universe: unknown universe 'SP500'"):
        scan()
    assert ScanRun.objects.get().saved_screen.name == "highs"


def test_a_bad_argument_names_it(highs):
    with pytest.raises(CommandError, match=r"universe: unknown universe 'NOPE' \(known: TEST\)"):
        scan("--screen", "high_52w", "--universe", "NOPE")
    with pytest.raises(CommandError, match=r"--as-of '2023-13-01' is not a date"):
        scan("--screen", "high_52w", "--universe", "TEST", "--as-of", "2023-13-01")
    with pytest.raises(CommandError, match=r"params.top_percent: top_percent: Input should be greater than 0"):
        scan("--screen", "momentum_breakout", "--universe", "TEST", "--param", "top_percent=0")
    with pytest.raises(CommandError, match=r"--param 'top_percent': expected name=value"):
        scan("--screen", "momentum_breakout", "--universe", "TEST", "--param", "top_percent")
    assert not ScanRun.objects.exists()


def test_a_run_that_fails_exits_non_zero_with_the_reason(highs, make_bars):
    make_bars("UP", "XNYS", [(dt.date(2023, 2, 13), 1, 1, 1, 1, 1)])
    with pytest.raises(CommandError, match=r"scan failed: high_52w \(run #\d+\): XNYS: the panels hold"):
        scan("--screen", "high_52w", "--universe", "TEST")


def test_parameters_nest_and_read_json_values():
    assert parse_params(["top_percent=2", "filters.min_price.USD=10", "require=all", "return_windows=[21, 63]",
                         "filters.sectors=[\"Energy\"]"]) == {
        "top_percent": 2, "require": "all", "return_windows": [21, 63],
        "filters": {"min_price": {"USD": 10}, "sectors": ["Energy"]}}


def test_a_param_changes_that_key_only(highs):
    scan("--screen", "momentum_breakout", "--universe", "TEST", "--param", "filters.min_price.USD=10",
         "--param", "filters.sectors=[\"Energy\"]")
    filters = ScanRun.objects.get().params["filters"]
    # The AUD minimum and the traded-value minimums are the defaults still.
    assert filters["min_price"] == {"USD": 10.0, "AUD": 1.0} and filters["sectors"] == ["Energy"]
    assert filters["min_dollar_volume"] == {"USD": 20e6, "AUD": 5e6}


def test_from_and_to_replay_the_screen_and_print_the_forward_returns(highs):
    out = scan("--screen", "high_52w", "--universe", "TEST", "--from", DAYS[10].isoformat(), "--to",
               DAYS[-1].isoformat(), "--horizons", "1,5", "--param", "window=5", "--param", "filters={}")
    replay = ScanReplay.objects.get()
    lines = out.splitlines()
    assert lines[0].startswith(f"replay #{replay.pk} high_52w TEST 2023-01-16..2023-02-10: 20 sessions, ")
    assert lines[2].lstrip().startswith("1 d") and lines[3].lstrip().startswith("5 d")
    with pytest.raises(CommandError, match="a replay needs --screen"):
        scan("--from", "2023-01-01")
