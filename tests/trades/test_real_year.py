"""A year of trades on real prices (AlphaVantage's 2020 AAPL and MSFT, AAPL's 4:1 split included): the
overview, the snapshots and the API agree to the cent with the hand calculation in the comments."""
import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from marketdata.services import ingest_bars
from tests.conftest import MARKETDATA
from tests.trades.conftest import API
from trades import services
from trades.models import PortfolioSnapshot

pytestmark = pytest.mark.django_db
D = Decimal
SP500 = MARKETDATA / "us" / "sp500_daily_av_2007_2021.parquet"

# Real closes (the file's raw close on the day) and the real dividends, paid on their pay dates.
YEAR = """date,action,symbol,quantity,price,commission,amount,notes
2020-01-02,buy,AAPL,100,300.35,1.00,,close of the day
2020-02-13,dividend,AAPL,,,,77.00,0.77 on 100
2020-03-16,buy,MSFT,50,135.42,1.00,,
2020-05-14,dividend,AAPL,,,,82.00,0.82 on 100
2020-06-01,sell,AAPL,40,321.85,1.00,,
2020-06-11,dividend,MSFT,,,,25.50,0.51 on 50
2020-08-13,dividend,AAPL,,,,49.20,0.82 on 60
2020-09-10,dividend,MSFT,,,,25.50,0.51 on 50
2020-11-12,dividend,AAPL,,,,49.20,0.205 on 240 after the 4:1 split
2020-12-10,dividend,MSFT,,,,28.00,0.56 on 50
2020-12-31,sell,AAPL,240,132.69,1.00,,the 60 left are 240 since the split
"""


@pytest.fixture
def year_2020(tmp_path):
    """AAPL and MSFT, every 2020 session, ingested from the real file with their splits and dividends."""
    table = pq.read_table(SP500, filters=[("ticker", "in", ["AAPL", "MSFT"]), ("date", ">=", dt.date(2020, 1, 2)),
                                          ("date", "<=", dt.date(2020, 12, 31))])
    path = tmp_path / "aapl_msft_2020.parquet"
    pq.write_table(pa.Table.from_pandas(table.to_pandas(), preserve_index=False), path)
    run = ingest_bars(provider="parquet", path=path)
    assert run.rows_read == 2 * 253


def test_a_year_of_real_trades_agrees_to_the_cent(alice, alice_client, year_2020, django_capture_on_commit_callbacks):
    book = services.create_portfolio(owner=alice, name="Alice 2020", base_currency="USD", starting_cash="100000",
                                     inception_date=dt.date(2020, 1, 2))
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/trades/import/", {"portfolio": book.pk,
                                                         "file": SimpleUploadedFile("2020.csv", YEAR.encode())})
    assert response.status_code == 302
    # Cash: 100,000 - (30,035 + 1) - (6,771 + 1) + (12,874 - 1) + (31,845.60 - 1) + 336.40 of dividends = 108,246.00.
    # MSFT: 50 x 222.42 (the 31 Dec close) = 11,121.00; value 119,367.00.
    last = PortfolioSnapshot.objects.filter(portfolio=book).order_by("-date").first()
    assert (last.date, last.cash, last.invested, last.total_value) == (
        dt.date(2020, 12, 31), D("108246"), D("11121"), D("119367"))
    assert PortfolioSnapshot.objects.filter(portfolio=book).count() == 253  # every 2020 NYSE session
    # Across the split (Fri 28 Aug -> Mon 31 Aug): AAPL 60 x 499.23 = 29,953.80 -> 240 x 129.04 = 30,969.60
    # (+1,015.80, not -75%), MSFT 50 x (225.53 - 228.91) = -169.00: +846.80.
    by_day = {s.date: s.total_value for s in PortfolioSnapshot.objects.filter(portfolio=book)}
    assert by_day[dt.date(2020, 8, 31)] - by_day[dt.date(2020, 8, 28)] == D("846.80")

    s = alice_client.get(f"{API}/portfolio/summary?portfolio=Alice%202020").json()
    # Realised AAPL: 40 x 321.85 + 240 x 132.69 - 100 x 300.35 - 3 x 1.00 = 14,681.60.
    # Unrealised MSFT: 11,121 - (6,771 + 1) = 4,349.00; income 336.40; total 19,367.00 = 119,367 - 100,000.
    assert (s["value"], s["cash"], s["total_pnl"]) == ("119367.00", "108246.00", "19367.00")
    assert (s["realised_pnl"], s["unrealised_pnl"], s["income"]) == ("14681.60", "4349.00", "336.40")
    aapl = alice_client.get(f"{API}/trades?symbol=AAPL").json()["items"][0]
    assert (aapl["status"], aapl["pnl"], aapl["open_quantity"]) == ("closed", "14681.60", "0")
    snapshots = alice_client.get(f"{API}/portfolio/snapshots?portfolio=Alice%202020&start=2020-12-31").json()
    assert [i["value"] for i in snapshots["items"]] == ["119367.00"]
    page = alice_client.get(f"/?portfolio={book.pk}").content.decode()
    assert ">119,367.00<" in page and ">108,246.00<" in page and ">+19,367.00<" in page
    assert ">11,121.00<" in page  # MSFT's market value in the positions table
