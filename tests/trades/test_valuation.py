"""The valuation inputs: panels and database give the same marks; splits through the journal."""
import datetime as dt
import re
from decimal import Decimal

import numpy as np
import pytest

from marketdata.models import CorporateAction
from tests.trades.conftest import API, patch, sessions
from trades import services, valuation
from trades.models import PortfolioSnapshot

pytestmark = pytest.mark.django_db
D = Decimal


def test_panels_and_database_mark_the_book_alike(alice, usd_book, series):
    days = sessions("XNYS", dt.date(2024, 1, 2), 30)
    series("ACME", "XNYS", {d: 50.0 + (i % 7) for i, d in enumerate(days) if i != 12})  # a gap on the 13th
    series("BETA", "XNYS", {d: 20.0 - (i % 5) / 2 for i, d in enumerate(days)})
    trade = services.record_trade(portfolio=usd_book, user=alice, symbol="ACME", quantity=10, entry_price="50",
                                  entry_date=days[0])
    services.close_trade(trade, user=alice, date=days[20], price="53", quantity=4)
    services.record_trade(portfolio=usd_book, user=alice, symbol="BETA", direction="short", quantity=100,
                          entry_price="20", entry_date=days[5])
    journal = valuation.load_journal(usd_book)
    panels, _ = valuation.compute_snapshots(journal, start=days[0], end=days[-1], source="panels")
    database, _ = valuation.compute_snapshots(journal, start=days[0], end=days[-1], source="database")
    np.testing.assert_allclose(panels[["value", "cash", "invested", "daily_return"]].to_numpy(dtype=float),
                               database[["value", "cash", "invested", "daily_return"]].to_numpy(dtype=float),
                               rtol=0, atol=1e-9)
    # The 13th has no ACME bar: marked at the 12th's close (50 + 11 % 7 = 54), not skipped.
    assert panels["value"].iloc[12] == pytest.approx(10_000 - 500 + 10 * 54 + 2000 - 100 * (20 - 12 % 5 / 2))


def test_a_split_between_entry_and_exit_is_undone(api, alice, usd_book, series):
    # 10 bought at 400; a 4:1 split goes ex on the 3rd; the broker reports 40 shares, sold at 101.
    days = sessions("XNYS", dt.date(2024, 1, 2), 3)
    acme = series("ACME", "XNYS", dict(zip(days, [400.0, 101.0, 101.0])))
    CorporateAction.objects.create(instrument=acme, kind="split", ex_date=days[1], ratio=4, source="test")
    trade = services.record_trade(portfolio=usd_book, user=alice, symbol="ACME", quantity=10, entry_price="400",
                                  entry_date=days[0])
    too_many = patch(api, f"/trades/{trade.pk}", {"exit_date": str(days[2]), "exit_price": "101",
                                                  "exit_quantity": "41"})
    assert too_many.json()["detail"][0]["msg"] == "41 is more than the 40 still open"
    closed = patch(api, f"/trades/{trade.pk}", {"exit_date": str(days[2]), "exit_price": "101"}).json()
    # The default exit is everything open, on today's basis: 40 shares; 40 x 101 - 10 x 400 = 40.00.
    assert (closed["status"], closed["exits"][0]["quantity"], closed["pnl"]) == ("closed", "40", "40.00")
    services.snapshot_portfolio(portfolio=usd_book)
    values = [s.total_value for s in PortfolioSnapshot.objects.filter(portfolio=usd_book).order_by("date")]
    # 6,000 cash + 10 x 400; then 6,000 + 40 x 101 (not 10 x 101: a split is not a 75% loss); then sold.
    assert values == [D(10000), D(10040), D(10040)]
    assert api.get(f"{API}/portfolio/summary").json()["total_pnl"] == "40.00"


def test_after_a_split_the_average_entry_is_on_the_shares_held(api, alice_client, alice, usd_book, series):
    # 60 bought at 411.23; 7:1 then 4:1 splits: 1,680 shares held, so the average entry is 411.23 / 28.
    days = sessions("XNYS", dt.date(2024, 1, 2), 3)
    acme = series("ACME", "XNYS", dict(zip(days, [411.23, 58.75, 14.70])))
    CorporateAction.objects.create(instrument=acme, kind="split", ex_date=days[1], ratio=7, source="test")
    CorporateAction.objects.create(instrument=acme, kind="split", ex_date=days[2], ratio=4, source="test")
    book_cash = services.update_portfolio(usd_book, starting_cash="30000")
    services.record_trade(portfolio=book_cash, user=alice, symbol="ACME", quantity=60, entry_price="411.23",
                          entry_date=days[0])
    services.snapshot_portfolio(portfolio=usd_book)
    [position] = api.get(f"{API}/portfolio/summary").json()["open_positions"]
    # 60 x 411.23 = 24,673.80 paid for 1,680 shares: 14.686786 a share (to 6 places).
    assert (position["quantity"], position["average_price"], position["price"]) == ("1680", "14.686786", "14.70")
    # 1,680 x 14.70 = 24,696.00 against the 24,673.80 paid: +22.20, whatever the share basis.
    assert (position["market_value"], position["cost"], position["unrealised_pnl"]) == ("24696.00", "24673.80", "22.20")
    page = alice_client.get("/").content.decode()
    assert re.search(r"<strong>ACME</strong>.*?>1,680<.*?>14\.69 <span", page, re.S)
    # Sell offers the 1,680 shares held, not the 60 entry shares.
    sell = alice_client.get(f"/portfolios/{usd_book.pk}/close-position/?instrument=XNYS:ACME&direction=long")
    body = sell.content.decode()
    assert re.search(r'name="quantity" value="1680"', body) and "1,680 shares held" in body
