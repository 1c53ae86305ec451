"""Corporate actions end to end: import_actions, store_actions, factors from actions on ingest and recompute."""
import datetime as dt
import gzip
import io
import logging

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from marketdata.adjustments import import_actions, recompute_factors, store_actions
from marketdata.errors import IngestError
from marketdata.models import CorporateAction, Instrument, IngestRun, PriceBar
from marketdata.services import ingest_bars
from tests.conftest import MARKETDATA

pytestmark = pytest.mark.django_db

SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"
ACTIONS = MARKETDATA / "us" / "sp500_corporate_actions_av_1999_2021.csv.gz"
# AAPL's close on 2014-08-06, the session before its 0.47 dividend went ex on 2014-08-07.
AAPL_CLOSE_0806 = 94.96


def vendor_rows(tickers, start, end):
    table = pq.read_table(SP500, filters=[("ticker", "in", tickers)]).to_pandas()
    table["date"] = pd.to_datetime(table["date"])
    return table[(table["date"] >= start) & (table["date"] <= end)].reset_index(drop=True)


@pytest.fixture
def bars_csv(tmp_path):
    """Write the S&P file's bars of `tickers` in [start, end] as a CSV without its action columns."""
    def write(tickers, start, end):
        rows = vendor_rows(tickers, start, end)
        path = tmp_path / "bars.csv"
        rows[["ticker", "date", "open", "high", "low", "close", "volume", "adjusted_close"]].to_csv(
            path, index=False, date_format="%Y-%m-%d")
        return path

    return write


@pytest.fixture
def actions_csv(tmp_path):
    """Write the real corporate-actions rows of `tickers` dated in [start, end] (plus `extra` lines)."""
    with gzip.open(ACTIONS, "rt") as handle:
        real = pd.read_csv(handle, dtype=str)

    def write(tickers, start, end, name="actions.csv", extra=""):
        rows = real[real["ticker"].isin(tickers) & (real["date"] >= start) & (real["date"] <= end)]
        path = tmp_path / name
        path.write_text(rows.to_csv(index=False) + extra)
        return path

    return write


def factors(symbol, start=None, end=None):
    bars = PriceBar.objects.filter(instrument__symbol=symbol).between(start, end).order_by("date")
    return {d.isoformat(): f for d, f in bars.values_list("date", "adj_factor")}


def test_import_actions_replaces_the_vendor_factors_and_names_unknown_symbols(bars_csv, actions_csv):
    ingest_bars(provider="csv", path=bars_csv(["AAPL"], "2014-08-01", "2014-08-12"))
    # The vendor's factor on 2014-08-06 is its adjusted close / close (2021 terms): 21.392426 / 94.96.
    assert factors("AAPL")["2014-08-06"] == pytest.approx(21.392426 / 94.96)
    # AAPL's actions to 2014-08-31: dividends 02-06, 05-08, 08-07 and the 7:1 split of 06-09 (7.000007
    # in the file, stored as 7); MSFT's three dividends are in the file but MSFT is not in the database.
    path = actions_csv(["AAPL", "MSFT"], "2014-01-01", "2014-08-31")

    run = import_actions(path=path, exchange="XNYS", source="alphavantage")

    assert (run.kind, run.status, run.rows_read, run.rows_inserted, run.rows_updated) == (
        "actions", "partial", 7, 4, 0)
    assert run.errors == ["XNYS:MSFT: no such instrument, its actions in actions.csv were not stored"]
    assert not Instrument.objects.filter(symbol="MSFT").exists()
    stored = list(CorporateAction.objects.order_by("ex_date").values_list("kind", "ex_date", "ratio", "amount"))
    assert [(k, d.isoformat(), r, a and float(a)) for k, d, r, a in stored] == [
        ("dividend", "2014-02-06", None, 3.05), ("dividend", "2014-05-08", None, 3.29),
        ("split", "2014-06-09", 7.0, None), ("dividend", "2014-08-07", None, 0.47)]
    # Only the 08-07 dividend follows a stored bar: 1 - 0.47 / 94.96 = 0.9950505 before it, 1 from it on.
    got = factors("AAPL")
    assert {d: got[d] for d in ("2014-08-01", "2014-08-06")} == pytest.approx(
        {"2014-08-01": 1 - 0.47 / AAPL_CLOSE_0806, "2014-08-06": 1 - 0.47 / AAPL_CLOSE_0806}, rel=1e-12)
    assert [got[d] for d in ("2014-08-07", "2014-08-08", "2014-08-11", "2014-08-12")] == [1.0] * 4


def test_a_second_import_changes_nothing(bars_csv, actions_csv):
    ingest_bars(provider="csv", path=bars_csv(["AAPL"], "2014-08-01", "2014-08-12"))
    path = actions_csv(["AAPL"], "2014-01-01", "2014-08-31")
    import_actions(path=path)
    bars_before = dict(PriceBar.objects.values_list("id", "updated_at"))
    actions_before = dict(CorporateAction.objects.values_list("id", "updated_at"))

    again = import_actions(path=path)

    assert (again.status, again.rows_inserted, again.rows_updated, again.rows_unchanged) == ("success", 0, 0, 4)
    assert again.factors_recomputed == 0
    assert dict(PriceBar.objects.values_list("id", "updated_at")) == bars_before
    assert dict(CorporateAction.objects.values_list("id", "updated_at")) == actions_before


def test_a_new_action_landing_recomputes_the_bars_before_it(bars_csv, actions_csv):
    ingest_bars(provider="csv", path=bars_csv(["AAPL"], "2014-08-01", "2014-08-12"))
    import_actions(path=actions_csv(["AAPL"], "2014-01-01", "2014-07-31", name="to_july.csv"))
    assert set(factors("AAPL").values()) == {1.0}  # every action so far precedes the first bar

    run = import_actions(path=actions_csv(["AAPL"], "2014-01-01", "2014-08-31", name="to_august.csv"))

    # The 08-07 dividend is new: the four bars before it (08-01, 04, 05, 06) move to 1 - 0.47 / 94.96.
    assert (run.rows_inserted, run.rows_unchanged, run.factors_recomputed) == (1, 3, 4)
    assert factors("AAPL", end=dt.date(2014, 8, 6)) == pytest.approx(
        dict.fromkeys(["2014-08-01", "2014-08-04", "2014-08-05", "2014-08-06"], 1 - 0.47 / AAPL_CLOSE_0806),
        rel=1e-12)


def test_store_actions_updates_a_revised_amount_and_keeps_unknown_symbols_out(make_bars, caplog):
    aapl = make_bars("AAPL", "XNYS", [(dt.date(2014, 8, 6), 95.0, 95.1, 94.0, 94.96, 1),
                                      (dt.date(2014, 8, 7), 94.5, 94.9, 94.0, 94.48, 1)], adj_factor=0.2)
    action = {"symbol": ["AAPL", "ZZZZ"], "exchange": ["XNYS", "XNYS"], "kind": ["dividend", "split"],
              "ex_date": pd.to_datetime(["2014-08-07", "2014-08-07"]), "ratio": [np.nan, 2.0], "amount": [0.47, np.nan]}
    with caplog.at_level(logging.WARNING, logger="marketdata.adjustments"):
        assert store_actions(actions=pd.DataFrame(action), source="test") == 1
    assert "XNYS:ZZZZ" in caplog.text
    assert not Instrument.objects.filter(symbol="ZZZZ").exists()
    # 1 - 0.47 / 94.96 = 0.99505; the vendor's 0.2 is gone because AAPL now has actions.
    assert factors("AAPL") == pytest.approx({"2014-08-06": 1 - 0.47 / 94.96, "2014-08-07": 1.0}, rel=1e-12)

    # A provider revising the amount (a test value, not AAPL's) updates the one row and the factor.
    revised = pd.DataFrame({**action, "amount": [0.50, np.nan]}).iloc[:1]
    assert store_actions(actions=revised, source="test") == 1
    assert store_actions(actions=revised, source="test") == 0
    assert float(CorporateAction.objects.get(instrument=aapl).amount) == 0.50
    assert factors("AAPL")["2014-08-06"] == pytest.approx(1 - 0.50 / 94.96, rel=1e-12)


def test_recompute_rewrites_reviewed_bars_too_and_leaves_instruments_without_actions(make_bars):
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
    zed = make_bars("ZED", "XNYS", [(d, c, c, c, c, 10) for d, c in zip(days, [100.0, 102.0, 51.0])], adj_factor=0.3)
    other = make_bars("OTH", "XNYS", [(d, 5.0, 5.0, 5.0, 5.0, 10) for d in days], adj_factor=0.7)
    PriceBar.objects.filter(instrument=zed, date=days[0]).update(reviewed=True)
    CorporateAction.objects.create(instrument=zed, kind="split", ex_date=days[2], ratio=2.0, source="test")

    # 2:1 split on 03-06: 0.5, 0.5, 1 (the reviewed 03-04 bar too); OTH keeps its 0.7.
    assert recompute_factors([zed.pk, other.pk]) == 3
    assert list(factors("ZED").values()) == [0.5, 0.5, 1.0]
    assert set(factors("OTH").values()) == {0.7}
    assert recompute_factors([zed.pk, other.pk]) == 0


def test_the_sp500_ingest_adjusts_aapl_across_its_7_for_1_split_from_its_own_actions():
    run = ingest_bars(provider="parquet", path=SP500, symbols=["AAPL"], start=dt.date(2014, 5, 1),
                      end=dt.date(2014, 6, 30))

    assert run.result.actions == 2  # the 3.29 dividend of 05-08 and the 06-09 split
    assert list(CorporateAction.objects.values_list("kind", "ex_date", "ratio")) == [
        ("dividend", dt.date(2014, 5, 8), None), ("split", dt.date(2014, 6, 9), 7.0)]
    bars = pd.DataFrame(PriceBar.objects.filter(instrument__symbol="AAPL").order_by("date")
                        .values_list("date", "close", "adj_factor"), columns=["date", "close", "factor"])
    adjusted = bars["close"] * bars["factor"]
    by_date = dict(zip(bars["date"].astype(str), adjusted))
    # Across the split: 645.57 / 7 = 92.2243 on 06-06, 93.70 on 06-09: +1.601%, the holder's real return
    # (7 x 93.70 / 645.57 - 1), where the raw closes say -85.5%.
    assert by_date["2014-06-09"] / by_date["2014-06-06"] - 1 == pytest.approx(7 * 93.70 / 645.57 - 1, rel=1e-12)
    # Before 05-08 also the dividend: (1 - 3.29 / 592.33) / 7 on 05-07.
    assert by_date["2014-05-07"] == pytest.approx(592.33 * (1 - 3.29 / 592.33) / 7, rel=1e-12)
    # Every daily adjusted return agrees with the vendor's adjusted close to 1e-4: no jump anywhere.
    vendor = vendor_rows(["AAPL"], "2014-05-01", "2014-06-30")["adjusted_close"].to_numpy()
    np.testing.assert_allclose(adjusted.pct_change().to_numpy()[1:], (vendor[1:] / vendor[:-1]) - 1, atol=1e-4)
    assert run.result.factors_recomputed == 0


def test_appending_the_next_sessions_recomputes_only_when_an_action_lands():
    # May, then June: June brings the 06-09 split, so May's bars are recomputed from the database.
    ingest_bars(provider="parquet", path=SP500, symbols=["AAPL"], start=dt.date(2014, 5, 1), end=dt.date(2014, 5, 30))
    may = factors("AAPL")
    # The 05-08 dividend alone: 1 - 3.29 / 592.33 before it.
    assert may["2014-05-07"] == pytest.approx(1 - 3.29 / 592.33, rel=1e-12)

    june = ingest_bars(provider="parquet", path=SP500, symbols=["AAPL"], start=dt.date(2014, 6, 2),
                       end=dt.date(2014, 6, 30))

    # 21 May sessions from 05-01 to 05-30 (Memorial Day 05-26): all move by 1/7.
    assert june.result.factors_recomputed == 21
    assert factors("AAPL")["2014-05-07"] == pytest.approx((1 - 3.29 / 592.33) / 7, rel=1e-12)
    july = ingest_bars(provider="parquet", path=SP500, symbols=["AAPL"], start=dt.date(2014, 7, 1),
                       end=dt.date(2014, 7, 31))
    assert (july.result.actions, july.result.factors_recomputed) == (0, 0)


def test_import_actions_rejects_a_bad_value_naming_file_row_and_column(tmp_path, make_bars):
    make_bars("AAPL", "XNYS", [(dt.date(2014, 8, 6), 95.0, 95.1, 94.0, 94.96, 1)])
    path = tmp_path / "actions.csv"
    path.write_text("ticker,date,dividend_amount,split_coefficient,close_on_date\n"
                    "AAPL,2014-08-07,0.47,1.0,94.48\n"
                    "AAPL,2014-11-06,abc,1.0,108.70\n")

    with pytest.raises(IngestError, match="""^actions.csv: row 3, column "dividend_amount": 'abc' is not a number$"""):
        import_actions(path=path)

    assert CorporateAction.objects.count() == 0
    assert IngestRun.objects.get().status == "failed"


@pytest.mark.parametrize("text, message", [
    ("ticker,date,dividend_amount\nAAPL,2014-08-07,0.47\n",
     'actions.csv: missing column "split_ratio" (columns found: "ticker", "date", "dividend_amount")'),
    ("ticker,date,dividend_amount,split_coefficient\nAAPL,08/07/2014,0.47,1\n",
     """actions.csv: row 2, column "date": '08/07/2014' is not a date (expected YYYY-MM-DD)"""),
    ("ticker,date,dividend_amount,split_coefficient\nAAPL,2014-08-07,0,-2\n",
     """actions.csv: row 2, column "split_coefficient": '-2' is not a split ratio (must be positive)"""),
    ("ticker,date,dividend_amount,split_coefficient\nAAPL,2014-08-07,-0.47,1\n",
     """actions.csv: row 2, column "dividend_amount": '-0.47' is not a dividend (negative)"""),
])
def test_import_actions_names_the_problem(tmp_path, text, message):
    path = tmp_path / "actions.csv"
    path.write_text(text)
    with pytest.raises(IngestError) as caught:
        import_actions(path=path)
    assert str(caught.value) == message


def test_the_command_reports_counts_and_unknown_symbols(bars_csv, actions_csv):
    ingest_bars(provider="csv", path=bars_csv(["AAPL"], "2014-08-01", "2014-08-12"))
    path = actions_csv(["AAPL", "MSFT"], "2014-01-01", "2014-08-31")
    out, err = io.StringIO(), io.StringIO()

    call_command("import_actions", str(path), "--exchange", "XNYS", stdout=out, stderr=err)

    # All 8 bars (2014-08-01..12) leave the vendor's factors: 4 for 1 - 0.47/94.96, 4 for 1.0.
    assert "alphavantage: 7 rows read, 4 actions for 1 instrument: 4 inserted, 0 updated, 0 unchanged; " \
           "8 bar factors recomputed" in out.getvalue()
    assert "1 symbols without an instrument on XNYS, not stored: XNYS:MSFT" in err.getvalue()
    with pytest.raises(CommandError, match="no-such.csv: no such file"):
        call_command("import_actions", str(path.parent / "no-such.csv"), stdout=out, stderr=err)


def test_the_instrument_page_marks_and_lists_the_actions(alice_client):
    ingest_bars(provider="parquet", path=SP500, symbols=["AAPL"], start=dt.date(2014, 5, 1), end=dt.date(2014, 6, 30))

    response = alice_client.get("/instruments/AAPL/?adjusted=1&start=2014-05-01")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Splits and dividends" in page
    assert "Split 7:1" in page and "Dividend 3.29" in page
    assert '"name":"Splits"' in page and '"name":"Dividends"' in page


def test_store_bars_takes_a_providers_actions_beside_the_bars(bars_csv):
    from marketdata.services import store_bars
    from marketdata.sources import read_file

    bars = read_file(bars_csv(["AAPL"], "2014-08-01", "2014-08-12"))
    actions = pd.DataFrame({"symbol": ["AAPL", "MSFT"], "exchange": ["XNYS", "XNYS"], "kind": ["dividend"] * 2,
                            "ex_date": pd.to_datetime(["2014-08-07", "2014-08-19"]), "ratio": [np.nan] * 2,
                            "amount": [0.47, 0.28]})

    result = store_bars(bars=bars, source="test", actions=actions)

    # MSFT has no instrument: named, not created. AAPL's factors come from its dividend in the same pass.
    assert (result.inserted, result.actions, result.factors_recomputed) == (8, 1, 0)
    assert result.warnings == ("XNYS:MSFT: no instrument, its corporate actions were not stored",)
    assert factors("AAPL")["2014-08-06"] == pytest.approx(1 - 0.47 / AAPL_CLOSE_0806, rel=1e-12)
    assert factors("AAPL")["2014-08-07"] == 1.0


def test_actions_only_for_unknown_symbols_store_nothing():
    actions = pd.DataFrame({"symbol": ["ZZZZ"], "exchange": ["XNYS"], "kind": ["split"],
                            "ex_date": pd.to_datetime(["2014-06-09"]), "ratio": [7.0], "amount": [np.nan]})
    assert store_actions(actions=actions, source="test") == 0
    assert CorporateAction.objects.count() == 0 and Instrument.objects.count() == 0
