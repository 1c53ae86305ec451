"""Daily snapshots and the summary, through the journal and the API, on hand-computed books.

The pure metric values are pinned in tests/quant/test_metrics.py; here the same PITFALLS cases go through
trades, prices, the snapshot service and GET /portfolio/summary and /portfolio/snapshots.
"""
import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from marketdata.models import IngestRun
from tests.trades.conftest import API, patch, post, sessions, staff_schema
from trades import daily, services
from trades.models import Portfolio, PortfolioSnapshot

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc
D = Decimal


def snaps(book):
    return list(PortfolioSnapshot.objects.filter(portfolio=book).order_by("date"))


def buy(book, user, symbol, quantity, price, day, **kwargs):
    return services.record_trade(portfolio=book, user=user, symbol=symbol, quantity=quantity, entry_price=price,
                                 entry_date=day, **kwargs)


def book_of(alice, name, cash, inception, currency="USD"):
    return services.create_portfolio(owner=alice, name=name, base_currency=currency, starting_cash=cash,
                                     inception_date=inception)


def closes_from_returns(first_price, returns):
    prices, price = [], first_price
    for r in returns:
        price *= 1 + r
        prices.append(price)
    return prices


# --- PITFALLS through snapshots and the summary ----------------------------------------------------

def test_a_first_day_loss_counts_in_the_drawdown(api, alice, usd_book, series):
    # BR-01: 10,000 all in at 100 (100 shares); closes 90, 80, 75, 78, 82.
    days = sessions("XNYS", dt.date(2024, 1, 2), 5)
    series("ACME", "XNYS", dict(zip(days, [90.0, 80, 75, 78, 82])))
    buy(usd_book, alice, "ACME", 100, "100", days[0])
    services.snapshot_portfolio(portfolio=usd_book)
    rows = snaps(usd_book)
    assert [r.total_value for r in rows] == [D(9000), D(8000), D(7500), D(7800), D(8200)]
    # 9000/10000 - 1, 8000/9000 - 1, 7500/8000 - 1, 7800/7500 - 1, 8200/7800 - 1
    assert [r.daily_return for r in rows] == pytest.approx([-0.10, -0.111111, -0.0625, 0.04, 0.051282], abs=1e-6)
    assert rows[-1].cumulative_return == pytest.approx(-0.18)  # 8,200 / 10,000 - 1
    summary = api.get(f"{API}/portfolio/summary").json()
    # The high-water mark starts at the 10,000 invested: 7,500 / 10,000 - 1 = -25%, not 7,500 / 9,000 - 1.
    assert summary["metrics"]["values"]["max_drawdown"] == pytest.approx(-0.25)
    assert summary["metrics"]["drawdown_dates"] == {"peak": None, "trough": "2024-01-04", "recovery": None}


@pytest.mark.parametrize(("inception", "closes", "expected"), [
    # BR-02 (b): 100 on 2022-01-03, 200 on 2022-12-30 (361 days): 2 ** (365.25 / 361) - 1 = 101.64%.
    (dt.date(2022, 1, 3), {dt.date(2022, 1, 3): 100.0, dt.date(2022, 12, 30): 200.0}, 1.016387),
    # BR-02 (c): 100, 110, 121 at three year-ends (731 days): 1.21 ** (365.25 / 731) - 1 = 9.99%.
    (dt.date(2019, 12, 31), {dt.date(2019, 12, 31): 100.0, dt.date(2020, 12, 31): 110.0,
                             dt.date(2021, 12, 31): 121.0}, 0.099928),
])
def test_cagr_counts_calendar_days_from_the_inception(api, alice, series, inception, closes, expected):
    book = book_of(alice, "CAGR", "100", inception)
    series("ACME", "XNYS", closes)
    buy(book, alice, "ACME", 1, "100", inception)
    services.snapshot_portfolio(portfolio=book)
    summary = api.get(f"{API}/portfolio/summary").json()
    assert summary["metrics"]["values"]["cagr"] == pytest.approx(expected, abs=1e-6)
    assert summary["value"] == f"{max(closes.values()):.2f}"


def test_the_sharpe_is_annualised_on_daily_sessions(api, alice, usd_book, series):
    # BR-03: 10 daily returns; mean 0.0015, std 0.0056814, ratio 0.26402 x sqrt(252) = 4.1912 (never 0.2640).
    returns = [0.010, -0.005, 0.007, -0.002, 0.004, -0.001, 0.003, -0.006, 0.008, -0.003]
    days = sessions("XNYS", dt.date(2024, 1, 2), 10)
    series("ACME", "XNYS", dict(zip(days, closes_from_returns(100.0, returns))))
    buy(usd_book, alice, "ACME", 100, "100", days[0])  # all 10,000 in: the book's returns are the stock's
    services.snapshot_portfolio(portfolio=usd_book)
    assert [r.daily_return for r in snaps(usd_book)] == pytest.approx(returns, abs=1e-12)
    sharpe = api.get(f"{API}/portfolio/summary").json()["metrics"]["values"]["sharpe"]
    assert sharpe == pytest.approx(4.1912, abs=5e-5)


def test_rolling_volatility_and_sharpe_use_the_sample_deviation(api, alice, usd_book, series):
    # BR-06 for the product's 21-day window: ten +1% days, then eleven -1% days, all invested.
    # mean -0.047619%; sum of squared deviations 0.00209524 / 20 -> std 1.02353% x sqrt(252) = 16.2481%
    # (ddof=0 would give 15.8565%); Sharpe -0.00047619 / 0.0102353 x sqrt(252) = -0.7385.
    returns = [0.01] * 10 + [-0.01] * 11
    days = sessions("XNYS", dt.date(2024, 1, 2), 21)
    series("ACME", "XNYS", dict(zip(days, closes_from_returns(100.0, returns))))
    buy(usd_book, alice, "ACME", 100, "100", days[0])
    services.snapshot_portfolio(portfolio=usd_book)
    rows = snaps(usd_book)
    assert all(r.volatility_21d is None for r in rows[:20])
    assert rows[20].volatility_21d == pytest.approx(0.162481, abs=5e-7)
    assert rows[20].sharpe_21d == pytest.approx(-0.738549, abs=5e-7)
    items = api.get(f"{API}/portfolio/snapshots").json()["items"]
    assert items[20]["volatility_21d"] == pytest.approx(0.162481, abs=5e-7) and items[19]["volatility_21d"] is None
    summary = api.get(f"{API}/portfolio/summary").json()
    assert summary["volatility_21d"] == pytest.approx(0.162481, abs=5e-7)


def test_summary_volatility_of_the_br06_returns_uses_ddof_1(api, alice, usd_book, series):
    # BR-06's 11 returns as daily ones: std (ddof=1) 1.378662% x sqrt(252) = 21.8856% (ddof=0: 20.8671%).
    returns = [0.0084, 0.0152, -0.0221, 0.0109, 0.0160, -0.0120, 0.0084, 0.0081, 0.0166, 0.0034, 0.0275]
    days = sessions("XNYS", dt.date(2024, 1, 2), 11)
    series("ACME", "XNYS", dict(zip(days, closes_from_returns(100.0, returns))))
    buy(usd_book, alice, "ACME", 100, "100", days[0])
    services.snapshot_portfolio(portfolio=usd_book)
    volatility = api.get(f"{API}/portfolio/summary").json()["metrics"]["values"]["volatility"]
    assert volatility == pytest.approx(0.218856, abs=5e-7)


def test_a_commission_is_charged_once_per_leg_in_the_marks(api, alice, series):
    # BR-19: 1,000.00; buy 10 at 29,037.85 (notional 290,378.50) with 116.1514 commission.
    book = book_of(alice, "Margin", "1000", dt.date(2024, 1, 2))
    days = sessions("XNYS", dt.date(2024, 1, 2), 2)
    series("XBT", "XNYS", dict(zip(days, [29037.85, 29037.85])))
    opened = buy(book, alice, "XBT", 10, "29037.85", days[0], entry_commission="116.1514")
    services.snapshot_portfolio(portfolio=book)
    first = snaps(book)[0]
    # Cash 1,000 - 290,378.50 - 116.1514 = -289,494.6514; value after the fill 883.8486 (bug: 767.6972).
    assert (first.cash, first.invested, first.total_value) == (D("-289494.6514"), D("290378.5"), D("883.8486"))
    services.close_trade(opened, user=alice, date=days[1], price="29037.85", commission="116.1514")
    services.snapshot_portfolio(portfolio=book)
    assert snaps(book)[1].total_value == D("767.6972")  # 1,000 - 232.3028
    summary = api.get(f"{API}/portfolio/summary").json()
    # Written to the cent (not -464.61); the stored P&L stays exact.
    assert (summary["realised_pnl"], summary["total_pnl"]) == ("-232.30", "-232.30")
    opened.refresh_from_db()
    assert opened.pnl == D("-232.3028")


def test_whole_shares_from_a_target_weight_leave_the_rest_in_cash(api, alice, series, committed):
    # BR-21: 30% of 1,000.00 at 120.00 = 2.5 -> 2 shares (240.00); 760.00 stays in cash.
    book = book_of(alice, "Small", "1000", dt.date(2024, 1, 2))
    series("ACME", "XNYS", {dt.date(2024, 1, 2): 120.0})
    with committed():
        response = post(api, "/trades", {"symbol": "ACME", "target_weight": 0.3, "entry_price": "120",
                                         "entry_date": "2024-01-02"})
    assert response.json()["quantity"] == "2"
    [row] = snaps(book)
    assert (row.cash, row.invested, row.total_value) == (D(760), D(240), D(1000))


# --- time-weighted returns, FX, reconciliation -----------------------------------------------------

def test_deposits_are_not_gains(api, alice, usd_book, committed):
    days = sessions("XNYS", dt.date(2024, 1, 2), 3)
    with committed():
        services.add_cash(portfolio=usd_book, user=alice, date=days[1], kind="deposit", amount="5000")
    services.snapshot_portfolio(portfolio=usd_book, end=days[2])
    rows = snaps(usd_book)
    assert [r.total_value for r in rows] == [D(10000), D(15000), D(15000)]
    assert [r.flows for r in rows] == [D(0), D(5000), D(0)]
    assert [r.daily_return for r in rows] == [0, 0, 0]  # 15,000 / (10,000 + 5,000) - 1


def test_foreign_trades_convert_each_leg_at_its_days_rate_and_say_when_there_is_none(api, alice, aud_book, series,
                                                                                     make_bars):
    us_days = sessions("XNYS", dt.date(2024, 1, 2), 9)  # Jan 2 .. 12
    series("ACME", "XNYS", dict(zip(us_days, [100.0, 110, 110, 110, 110, 110, 110, 110, 120])))
    # AUDUSD: USD per AUD, on the 2nd and 3rd only (the rates after are missing).
    make_bars("AUDUSD", "FX", [(dt.date(2024, 1, 2), .625, .625, .625, .625, 0), (dt.date(2024, 1, 3), .8, .8, .8, .8, 0)],
              asset_type="fx")
    first = buy(aud_book, alice, "ACME", 10, "100", us_days[0])
    services.close_trade(first, user=alice, date=us_days[1], price="110")
    second = buy(aud_book, alice, "ACME", 5, "110", us_days[1])
    first.refresh_from_db()
    # +100 USD, but the AUD cost was 1,000 / 0.625 = 1,600 and the proceeds 1,100 / 0.8 = 1,375: -225 AUD.
    assert (first.pnl, first.pnl_base) == (D(100), D(-225))
    services.close_trade(second, user=alice, date=us_days[8], price="120")
    second.refresh_from_db()
    assert second.pnl == D(50) and second.pnl_base is None
    assert second.pnl_base_missing == "no USD/AUD rate on 2024-01-12 or in the 5 days before (AUDUSD)"

    services.snapshot_portfolio(portfolio=aud_book)
    rows = {r.date: r for r in snaps(aud_book)}  # ASX sessions
    # Jan 2: cash 10,000 - 1,600 = 8,400 and 10 x 100 / 0.625 = 1,600 -> 10,000.
    assert rows[dt.date(2024, 1, 2)].total_value == D(10000)
    # Jan 3: +1,375 from the sale, -550 x 1.25 = -687.50 for the new 5; 5 x 110 x 1.25 = 687.50 held.
    assert (rows[dt.date(2024, 1, 3)].cash, rows[dt.date(2024, 1, 3)].total_value) == (D("9087.5"), D("9775"))
    # Jan 8 still uses the rate of the 3rd (5 days old); the 9th has none: no value, and the reason.
    assert rows[dt.date(2024, 1, 8)].total_value == D("9775")
    assert rows[dt.date(2024, 1, 9)].total_value is None
    assert rows[dt.date(2024, 1, 9)].unvalued_reason == "no USD/AUD rate on 2024-01-09 or in the 5 days before"
    assert "to convert the sale of ACME" in rows[dt.date(2024, 1, 12)].unvalued_reason
    summary = api.get(f"{API}/portfolio/summary?portfolio=Alice%20AU").json()
    assert summary["valuation_date"] == "2024-01-08" and summary["unvalued_days"] == 4
    assert "to convert the sale of ACME" in summary["unvalued_reason"]


def test_the_summary_reconciles_to_the_cent(api, alice, usd_book, series):
    days = sessions("XNYS", dt.date(2024, 1, 2), 6)
    series("ACME", "XNYS", dict(zip(days, [50.0, 52, 55, 54, 56, 57])))
    series("BETA", "XNYS", dict(zip(days, [20.0, 19, 18, 18.5, 17, 16])))
    long = buy(usd_book, alice, "ACME", 100, "50", days[0], entry_commission="9.95")
    services.close_trade(long, user=alice, date=days[2], price="55", quantity=40, commission="9.95")
    services.record_trade(portfolio=usd_book, user=alice, symbol="BETA", direction="short", quantity=200,
                          entry_price="20", entry_date=days[0], entry_commission="5")
    services.add_cash(portfolio=usd_book, user=alice, date=days[3], kind="deposit", amount="1000")
    services.add_cash(portfolio=usd_book, user=alice, date=days[4], kind="dividend", amount="12.00", instrument="ACME")
    services.add_cash(portfolio=usd_book, user=alice, date=days[5], kind="fee", amount="3.50")
    services.snapshot_portfolio(portfolio=usd_book)
    s = api.get(f"{API}/portfolio/summary").json()
    # Realised: 40 x (55 - 50) - 9.95 - 9.95 x 40/100 = 200 - 9.95 - 3.98 = 186.07.
    assert s["realised_pnl"] == "186.07"
    # ACME: 60 x 57 = 3,420 less cost 60 x 50 + 9.95 x 0.6 = 3,005.97 -> +414.03.
    # BETA short: received 200 x 20 - 5 = 3,995, owes 200 x 16 = 3,200 -> +795.00.
    acme, beta = (next(p for p in s["open_positions"] if p["symbol"] == name) for name in ("ACME", "BETA"))
    assert (acme["market_value"], acme["cost"], acme["unrealised_pnl"]) == ("3420.00", "3005.97", "414.03")
    assert (beta["market_value"], beta["cost"], beta["unrealised_pnl"]) == ("-3200.00", "3995.00", "795.00")
    assert s["unrealised_pnl"] == "1209.03" and s["income"] == "8.50" and s["net_flows"] == "1000.00"
    # Cash: 10,000 - 5,009.95 + 3,995 + 2,190.05 + 1,000 + 12 - 3.50 = 12,183.60; value 12,183.60 + 3,420 - 3,200.
    assert (s["cash"], s["invested"], s["value"]) == ("12183.60", "220.00", "12403.60")
    # value - starting cash - net flows = realised + unrealised + income: 1,403.60 = 186.07 + 1,209.03 + 8.50.
    assert s["total_pnl"] == "1403.60"
    assert D(s["realised_pnl"]) + D(s["unrealised_pnl"]) + D(s["income"]) == D(s["total_pnl"])
    assert (s["trades_open"], s["trades_closed"]) == (2, 0)
    # Weights: 3,420 / 12,403.60 and -3,200 / 12,403.60.
    assert acme["weight"] == pytest.approx(0.275726, abs=1e-6) and beta["weight"] == pytest.approx(-0.257990, abs=1e-6)
    by_symbol = {row["symbol"]: row["total"] for row in s["pnl_by_symbol"]}
    assert by_symbol == {"ACME": "600.10", "BETA": "795.00"}  # 186.07 + 414.03


def test_day_week_and_month_pnl_take_flows_out(api, alice, usd_book, series):
    days = sessions("XNYS", dt.date(2024, 1, 2), 25)  # Jan 2 .. Feb 6
    series("ACME", "XNYS", {day: 100.0 + i for i, day in enumerate(days)})
    buy(usd_book, alice, "ACME", 10, "100", days[0])
    services.add_cash(portfolio=usd_book, user=alice, date=days[-1], kind="deposit", amount="500")
    services.snapshot_portfolio(portfolio=usd_book)
    s = api.get(f"{API}/portfolio/summary").json()
    assert s["valuation_date"] == "2024-02-06"
    # Day: the close rose 1.00 on 10 shares: +10.00; the 500 deposit is not P&L.
    assert (s["day"]["since"], s["day"]["pnl"]) == ("2024-02-05", "10.00")
    # Week: since the close of Tue 30 Jan (7 days before): 5 sessions x 10.00 = +50.00.
    assert (s["week"]["since"], s["week"]["pnl"]) == ("2024-01-30", "50.00")
    # Month: since Fri 5 Jan (the last close on or before 6 Jan): 21 sessions x 10.00 = +210.00.
    assert (s["month"]["since"], s["month"]["pnl"]) == ("2024-01-05", "210.00")


# --- exactly the affected days, corrections, as_of -------------------------------------------------

def test_the_command_writes_only_the_new_days(alice, usd_book, series, make_bars):
    days = sessions("XNYS", dt.date(2024, 1, 2), 6)
    series("ACME", "XNYS", dict(zip(days[:4], [50.0, 51, 52, 53])))
    buy(usd_book, alice, "ACME", 10, "50", days[0])
    call_command("snapshot")
    before = {r.date: (r.pk, r.computed_at) for r in snaps(usd_book)}
    assert list(before) == days[:4]
    series("ACME", "XNYS", dict(zip(days[4:], [54.0, 55])))
    out = __import__("io").StringIO()
    call_command("snapshot", "--portfolio", "Alice US", stdout=out)
    assert "Alice US: 2024-01-08..2024-01-09, 2 days written" in out.getvalue()
    after = {r.date: (r.pk, r.computed_at) for r in snaps(usd_book)}
    assert {d: after[d] for d in days[:4]} == before
    assert snaps(usd_book)[-1].total_value == D(10050)  # 9,500 cash + 10 x 55


def test_a_back_dated_trade_recomputes_from_its_day_only(api, alice, usd_book, series, committed):
    days = sessions("XNYS", dt.date(2024, 1, 2), 8)
    series("ACME", "XNYS", dict(zip(days, [50.0, 51, 52, 53, 54, 55, 56, 57])))
    with committed():
        buy(usd_book, alice, "ACME", 10, "50", days[0])
    before = {r.date: (r.pk, r.total_value) for r in snaps(usd_book)}
    with committed():
        post(api, "/trades", {"symbol": "ACME", "quantity": "5", "entry_price": "53", "entry_date": str(days[5])})
    after = {r.date: (r.pk, r.total_value) for r in snaps(usd_book)}
    assert {d: after[d] for d in days[:5]} == {d: before[d] for d in days[:5]}  # untouched rows
    # From the 6th day: 5 more shares bought at 53, marked at 55, 56, 57: +10, +15, +20.
    assert [after[d][1] - before[d][1] for d in days[5:]] == [D(10), D(15), D(20)]
    assert Portfolio.objects.get(pk=usd_book.pk).snapshots_stale_from is None


def test_a_correction_back_dated_into_a_closed_month(api, carol_api, alice, usd_book, series, committed):
    january = sessions("XNYS", dt.date(2024, 1, 2), 25)  # Jan 2 .. Feb 6
    series("ACME", "XNYS", {day: 50.0 for day in january})
    exit_day = dt.date(2024, 1, 30)
    with time_machine.travel(dt.datetime(2024, 2, 7, 9, 0, tzinfo=UTC), tick=False), committed():
        opened = post(api, "/trades", {"symbol": "ACME", "quantity": "10", "entry_price": "50",
                                       "entry_date": "2024-01-02", "exit_date": str(exit_day),
                                       "exit_price": "60"}).json()
    before = {r.date: (r.pk, r.computed_at, r.total_value) for r in snaps(usd_book)}
    assert before[exit_day][2] == D(10100)  # 10,000 - 500 + 600
    # In March, January long closed, the admin corrects the exit price to 58.00.
    with time_machine.travel(dt.datetime(2024, 3, 4, 9, 0, tzinfo=UTC), tick=False), committed():
        response = patch(carol_api, f"/trades/{opened['id']}", {"exits": [
            {"date": str(exit_day), "quantity": "10", "price": "58"}], "reason": "broker statement"})
    assert response.status_code == 200 and response.json()["pnl"] == "80.00"
    after = {r.date: (r.pk, r.computed_at, r.total_value) for r in snaps(usd_book)}
    unchanged = [d for d in january if d < exit_day]
    assert {d: after[d] for d in unchanged} == {d: before[d] for d in unchanged}
    assert all(after[d][0] != before[d][0] and after[d][2] == D(10080) for d in january if d >= exit_day)
    history = api.get(f"{API}/trades/{opened['id']}/history").json()
    assert (history[-1]["change_kind"], history[-1]["changed_by"], history[-1]["change_reason"]) == (
        "corrected", "carol", "broker statement")
    # What we knew in February: the old exit, marked on the fly; what we know now: the correction.
    then = api.get(f"{API}/portfolio/summary?as_of=2024-02-10").json()
    now = api.get(f"{API}/portfolio/summary").json()
    assert (then["computed"], then["value"], then["realised_pnl"]) == ("on_the_fly", "10100.00", "100.00")
    assert (now["computed"], now["value"], now["realised_pnl"]) == ("stored", "10080.00", "80.00")
    old = api.get(f"{API}/portfolio/snapshots?as_of=2024-02-10&start={exit_day}&end={exit_day}").json()
    assert [i["value"] for i in old["items"]] == ["10100.00"]
    listed = api.get(f"{API}/trades?as_of=2024-02-10").json()["items"]
    assert [(t["version"], t["exit_price"]) for t in listed] == [(1, "60.00")]


def test_as_of_snapshots_stop_at_that_day(api, alice, usd_book, series):
    days = sessions("XNYS", dt.date(2024, 1, 2), 5)
    series("ACME", "XNYS", dict(zip(days, [50.0, 51, 52, 53, 54])))
    with time_machine.travel(dt.datetime(2024, 1, 3, 23, 0, tzinfo=UTC), tick=False):
        buy(usd_book, alice, "ACME", 10, "50", days[0])
    body = api.get(f"{API}/portfolio/snapshots?as_of=2024-01-04").json()
    assert body["computed"] == "on_the_fly" and [i["date"] for i in body["items"]] == ["2024-01-02", "2024-01-03",
                                                                                         "2024-01-04"]
    # Known on Jan 2 (before the trade was recorded): only cash.
    early = api.get(f"{API}/portfolio/snapshots?as_of=2024-01-02").json()
    assert [i["value"] for i in early["items"]] == ["10000.00"]


def test_a_voided_deposit_counts_until_it_was_voided(api, alice, usd_book, series):
    days = sessions("XNYS", dt.date(2024, 1, 2), 3)
    series("ACME", "XNYS", dict(zip(days, [50.0, 50, 50])))
    with time_machine.travel(dt.datetime(2024, 1, 10, 9, 0, tzinfo=UTC), tick=False):
        movement = services.add_cash(portfolio=usd_book, user=alice, date=days[1], kind="deposit", amount="2500")
    with time_machine.travel(dt.datetime(2024, 1, 20, 9, 0, tzinfo=UTC), tick=False):
        services.void_cash(movement, user=alice, reason="entered twice")
    services.snapshot_portfolio(portfolio=usd_book)
    assert [r.total_value for r in snaps(usd_book)] == [D(10000)] * 3
    then = api.get(f"{API}/portfolio/snapshots?as_of=2024-01-15").json()["items"]
    assert [i["value"] for i in then] == ["10000.00", "12500.00", "12500.00"]


# --- the daily chain -------------------------------------------------------------------------------

def test_the_daily_hook_marks_the_books_of_the_exchange(alice, usd_book, aud_book, series):
    days = sessions("XNYS", dt.date(2024, 1, 2), 3)
    series("ACME", "XNYS", dict(zip(days, [50.0, 51, 52])))
    buy(usd_book, alice, "ACME", 10, "50", days[0])
    run = IngestRun(kind=IngestRun.Kind.DAILY, provider="tiingo", exchange="XNYS", session=days[-1], params={})
    detail = daily.snapshot_portfolios(exchange="XNYS", session=days[-1], run=run)
    assert detail == {"portfolios": 1, "written": 3, "unvalued": 0, "session": "2024-01-04"}
    assert [r.total_value for r in snaps(usd_book)] == [D(10000), D(10010), D(10020)]
    assert not snaps(aud_book)  # an AUD book with no US trades waits for the XASX chain


def test_the_daily_hook_is_in_the_default_chain(settings):
    assert "trades.daily.snapshot_portfolios" in settings.DAILY_HOOKS


# --- number formats --------------------------------------------------------------------------------

def test_positions_are_decimal_strings_and_money_is_to_the_cent(api, alice, usd_book, series, carol):
    days = sessions("XNYS", dt.date(2024, 1, 2), 3)
    series("ACME", "XNYS", dict(zip(days, [10.0, 10.5, 430.47])))
    # 40 bought at 10.00 with 9.95; 15 sold at 10.50 with 9.95: 15 x 0.50 - 9.95 - 9.95 x 15/40 = -6.18125.
    trade = buy(usd_book, alice, "ACME", 40, "10", days[0], entry_commission="9.95")
    services.close_trade(trade, user=alice, date=days[1], price="10.5", quantity=15, commission="9.95")
    services.snapshot_portfolio(portfolio=usd_book)
    s = api.get(f"{API}/portfolio/summary").json()
    [position] = s["open_positions"]
    assert (position["quantity"], position["price"], position["average_price"]) == ("25", "430.47", "10.00")
    # Stored exactly, written to the cent (half up): -6.18125 -> -6.18.
    assert s["realised_pnl"] == "-6.18" and trade.__class__.objects.get().pnl == D("-6.18125")
    # 25 x 430.47 = 10,761.75 less 25 x 10 + 9.95 x 25/40 = 256.21875 -> 10,505.53125 -> 10505.53.
    assert (position["market_value"], position["cost"], position["unrealised_pnl"]) == ("10761.75", "256.22", "10505.53")
    listed = api.get(f"{API}/trades").json()["items"][0]
    assert (listed["pnl"], listed["pnl_base"], listed["fees"]) == ("-6.18", "-6.18", "19.90")
    assert (listed["entry_commission"], listed["exits"][0]["commission"]) == ("9.95", "9.95")  # as typed
    spec = staff_schema(carol)["PositionOut"]["properties"]
    for name in ("quantity", "price", "average_price"):
        text_type = spec[name] if "type" in spec[name] else spec[name]["anyOf"][0]
        assert (text_type["type"], text_type["format"]) == ("string", "decimal"), name


# --- prices newer than the stored snapshots --------------------------------------------------------

def test_prices_loaded_after_the_last_mark_are_caught_up_and_said(api, alice, alice_client, usd_book, series,
                                                                   committed):
    days = sessions("XNYS", dt.date(2024, 1, 2), 10)
    series("ACME", "XNYS", dict(zip(days[:4], [50.0, 51, 52, 53])))
    with committed():
        buy(usd_book, alice, "ACME", 10, "50", days[0])
    assert snaps(usd_book)[-1].date == days[3]
    # Newer bars from a file (marketdata ingest, not the daily chain): nothing marked the book.
    series("ACME", "XNYS", dict(zip(days[4:8], [54.0, 55, 56, 57])))
    body = alice_client.get("/").content.decode()  # its update is enqueued on commit (never, in this test)
    assert ("Prices up to 2024-01-11 are stored; the stored snapshots end at 2024-01-05. They are being brought "
            "up to date and these figures are computed on the fly meanwhile; <code>python manage.py snapshot "
            "--portfolio \"Alice US\"</code> stores them now") in body
    assert "marked to the close of Thu 11 Jan 2024" in body
    s = api.get(f"{API}/portfolio/summary").json()
    assert (s["prices_until"], s["snapshots_until"], s["snapshots_stale_from"]) == (
        "2024-01-11", "2024-01-05", "2024-01-08")
    assert s["notice"] == ("Prices up to 2024-01-11 are stored; the stored snapshots end at 2024-01-05. They are "
                           "being brought up to date and these figures are computed on the fly meanwhile; "
                           "`python manage.py snapshot --portfolio \"Alice US\"` stores them now (the daily "
                           "chain does after each close).")
    # Marked to the newest close on the fly: 9,500 cash + 10 x 57.
    assert (s["valuation_date"], s["value"], s["computed"]) == ("2024-01-11", "10070.00", "on_the_fly")
    call_command("snapshot", stdout=__import__("io").StringIO())  # what the notice says to run
    s = api.get(f"{API}/portfolio/summary").json()
    assert (s["computed"], s["notice"], s["snapshots_until"], s["snapshots_stale_from"]) == (
        "stored", None, "2024-01-11", None)
    # Next time the read itself brings them up to date: the mark enqueues the update when it commits.
    series("ACME", "XNYS", dict(zip(days[8:], [58.0, 59])))
    with committed():
        assert alice_client.get("/").status_code == 200
    assert snaps(usd_book)[-1].date == days[-1] and snaps(usd_book)[-1].total_value == D(10090)
    assert "are stored; the stored snapshots end" not in alice_client.get("/").content.decode()


def test_a_book_that_is_up_to_date_is_not_marked_again(api, alice, usd_book, series, committed,
                                                       django_capture_on_commit_callbacks):
    days = sessions("XNYS", dt.date(2024, 1, 2), 3)
    series("ACME", "XNYS", dict(zip(days, [50.0, 51, 52])))
    with committed():
        buy(usd_book, alice, "ACME", 10, "50", days[0])
    with django_capture_on_commit_callbacks() as callbacks:
        s = api.get(f"{API}/portfolio/summary").json()
    assert callbacks == [] and s["notice"] is None and s["computed"] == "stored"
    assert Portfolio.objects.get(pk=usd_book.pk).snapshots_stale_from is None
