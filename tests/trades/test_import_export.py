"""Trade files in (command and upload page: atomic, FIFO, row numbers) and CSV out (UTF-8 with a BOM)."""
import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from marketdata.models import Instrument
from tests.trades.conftest import API
from trades import services
from trades.errors import ImportRejected
from trades.models import CashMovement, ChangeKind, Trade, TradeVersion

pytestmark = pytest.mark.django_db
D = Decimal

FIFO_FILE = """date,action,symbol,quantity,price,commission,amount,trade_id,strategy,notes
2024-01-02,deposit,,,,,5000,,,top-up
2024-01-02,buy,ACME,100,10,1,,LOT-A,momentum,first lot
2024-01-03,buy,ACME,50,12,1,,LOT-B,momentum,
2024-01-04,sell,ACME,120,15,12,,,,trim
"""


@pytest.fixture
def acme(series):
    return series("ACME", "XNYS", {dt.date(2024, 1, 2): 10.0, dt.date(2024, 1, 3): 12.0, dt.date(2024, 1, 4): 15.0,
                                   dt.date(2024, 1, 5): 15.0})


def write(tmp_path, text, name="trades.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_a_sale_closes_the_oldest_lots_first(tmp_path, usd_book, acme):
    out = io.StringIO()
    call_command("import_trades", str(write(tmp_path, FIFO_FILE)), stdout=out)
    assert "trades.csv: 4 rows into Alice US: 2 trades opened, 2 exits recorded, 1 cash movements" in out.getvalue()
    a, b = Trade.objects.get(trade_id="LOT-A"), Trade.objects.get(trade_id="LOT-B")
    # 120 sold: all 100 of LOT-A, then 20 of LOT-B; the 12.00 commission shared 10.00 / 2.00.
    assert (a.status, a.closed_quantity, a.fees) == ("closed", D(100), D(11))
    assert a.pnl == D(489)         # 100 x (15 - 10) - 10.00 (its share of the sale's fee) - 1.00 (entry)
    assert (b.status, b.open_quantity) == ("open", D(30))
    assert b.pnl == D("57.6")      # 20 x (15 - 12) - 2.00 - 1.00 x 20/50
    assert (a.strategy_name, a.notes) == ("momentum", "first lot")
    version = TradeVersion.objects.get(trade=a, version=2)
    assert (version.change_kind, version.change_reason) == (ChangeKind.IMPORTED, "imported from trades.csv, row 5")
    assert CashMovement.objects.get().amount == D(5000)


@pytest.mark.parametrize(("line", "error"), [
    ("2024-01-05,buy,ACME,ten,15,,,,,", "row 6: quantity: 'ten' is not a number"),
    ("2024-01-05,bought,ACME,10,15,,,,,", "row 6: action: 'bought' is not one of buy, short, sell, cover, deposit, withdrawal"),
    ("05/01/2024,buy,ACME,10,15,,,,,", "row 6: date: '05/01/2024' is not a date (YYYY-MM-DD)"),
    ("2024-01-05,buy,,10,15,,,,,", "row 6: symbol: a buy needs a symbol"),
    ("2024-01-05,buy,ACME,10,-15,,,,,", "row 6: price: -15 must be more than 0"),
    ("2024-01-05,sell,ACME,31,15,,,,,", "row 6: quantity: 31 is more than the 30 open in long ACME on 2024-01-05"),
    ("2024-01-06,buy,ACME,10,15,,,,,", "row 6: date: Sat 2024-01-06 is not an XNYS session"),  # the column
    ("2024-01-05,buy,NOPE,10,15,,,,,", "row 6: symbol: unknown symbol 'NOPE'"),
    ("2024-01-05,deposit,,,,,,,,", "row 6: amount: missing"),
])
def test_a_bad_row_rejects_the_whole_file_naming_the_row(tmp_path, usd_book, acme, line, error):
    path = write(tmp_path, FIFO_FILE + line + "\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_trades", str(path), "--portfolio", "Alice US")
    assert "trades.csv: rejected, nothing was imported" in str(caught.value)
    assert error in str(caught.value)
    assert not Trade.objects.exists() and not CashMovement.objects.exists()  # the good rows did not land either


def test_the_file_may_come_from_excel_with_a_bom_and_other_headers(tmp_path, usd_book, acme):
    text = "Date,Side,Ticker,Qty,Price,Brokerage\n2024-01-02,BUY,xnys:acme,10,10,0.5\n"
    call_command("import_trades", str(write(tmp_path, text, encoding="utf-8-sig")))
    trade = Trade.objects.get()
    assert (trade.symbol, trade.quantity, trade.entry_commission) == ("ACME", D(10), D("0.5"))


def test_the_command_names_what_is_missing(tmp_path, usd_book, bob_book, acme):
    path = write(tmp_path, FIFO_FILE)
    with pytest.raises(CommandError, match=r"several portfolios \(Alice US, Bob US\); pass --portfolio NAME"):
        call_command("import_trades", str(path))
    with pytest.raises(CommandError, match="--portfolio 'Nope': no such portfolio"):
        call_command("import_trades", str(path), "--portfolio", "Nope")
    with pytest.raises(CommandError, match="no-such.csv: no such file"):
        call_command("import_trades", str(tmp_path / "no-such.csv"))
    with pytest.raises(CommandError, match="row 1: the header has no 'action' column"):
        call_command("import_trades", str(write(tmp_path, "date,symbol\n2024-01-02,ACME\n")), "--portfolio", "Bob US")
    with pytest.raises(CommandError, match=r"row 2 is not UTF-8 text \(byte 33\)"):
        call_command("import_trades", str(write(tmp_path, "date,action\n2024-01-02,buy Nestlé\n", encoding="latin-1")),
                     "--portfolio", "Bob US")


def test_the_upload_page_imports_or_shows_every_bad_row(alice_client, usd_book, acme):
    page = alice_client.get("/trades/import/")
    assert page.status_code == 200 and "<code>action</code>" in page.content.decode()
    bad = FIFO_FILE + "2024-01-05,buy,ACME,ten,15,,,,,\n2024-01-05,buy,ACME,1,x,,,,,\n"
    response = alice_client.post("/trades/import/", {"portfolio": usd_book.pk,
                                                     "file": SimpleUploadedFile("mine.csv", bad.encode())})
    body = response.content.decode()
    assert response.status_code == 400
    assert "mine.csv was rejected; nothing was imported." in body
    assert "row 6: quantity: &#x27;ten&#x27; is not a number" in body and "row 7: price: &#x27;x&#x27; is not a number" in body
    assert not Trade.objects.exists()
    response = alice_client.post("/trades/import/", {"portfolio": usd_book.pk,
                                                     "file": SimpleUploadedFile("mine.csv", FIFO_FILE.encode())})
    assert response.status_code == 302 and response["Location"] == "/trades/?portfolio=Alice+US"
    assert Trade.objects.count() == 2
    assert TradeVersion.objects.filter(changed_by__username="alice", change_kind="imported").count() == 4


@pytest.mark.parametrize("name, content, error", [
    ("mine.csv", FIFO_FILE.encode() + b"#" * 4096, "4,348 bytes is over the limit of 4,096 bytes"),
    ("mine.xlsx", FIFO_FILE.encode(), "expected a .csv or .txt file"),
    ("mine.csv", FIFO_FILE.encode() + b"2024-01-05,buy,ACME,1,15,,,,,\n" * 4,
     "more than 5 rows; split the file, or load it with"),
    ("mine.csv", FIFO_FILE.encode().replace(b"trim", b"tr\x00m"), "not a text file (it holds NUL bytes)"),
])
def test_an_upload_over_the_limits_is_refused_before_it_is_applied(alice_client, usd_book, acme, settings,
                                                                   monkeypatch, name, content, error):
    settings.UPLOAD_MAX_BYTES = 4096
    monkeypatch.setattr("trades.views.MAX_IMPORT_ROWS", 5)
    response = alice_client.post("/trades/import/", {"portfolio": usd_book.pk,
                                                     "file": SimpleUploadedFile(name, content)})
    assert response.status_code == 400
    assert error in response.content.decode().replace("&#x27;", "'").replace("`", "")
    assert not Trade.objects.exists() and not CashMovement.objects.exists()


def test_the_command_takes_a_file_longer_than_an_upload_may_be(tmp_path, usd_book, acme):
    with pytest.raises(ImportRejected, match="more than 2 rows"):
        services.import_trades(portfolio=usd_book, data=FIFO_FILE, max_rows=2)
    call_command("import_trades", str(write(tmp_path, FIFO_FILE)), "--portfolio", "Alice US")
    assert Trade.objects.count() == 2


def test_the_same_file_twice_is_refused_unless_asked_for(alice_client, usd_book, acme, tmp_path):
    post = {"portfolio": usd_book.pk}
    data = FIFO_FILE.replace("LOT-A", "").replace("LOT-B", "")  # trade ids would refuse a second booking anyway
    first = alice_client.post("/trades/import/", {**post, "file": SimpleUploadedFile("mine.csv", data.encode())})
    assert first.status_code == 302 and Trade.objects.count() == 2 and CashMovement.objects.count() == 1
    # The same bytes under another name: still the same executions.
    again = alice_client.post("/trades/import/", {**post, "file": SimpleUploadedFile("copy.csv", data.encode())})
    body = again.content.decode().replace("&#x27;", "'")
    assert again.status_code == 400 and "copy.csv was rejected; nothing was imported." in body
    assert "this file was already imported into Alice US on " in body and " by alice (4 rows)" in body
    assert Trade.objects.count() == 2 and CashMovement.objects.count() == 1
    # Re-saved by Excel: CRLF line endings, 100.00 for 100, the rows of a day in another order.
    lines = data.splitlines()
    resaved = "\r\n".join([lines[0], lines[2].replace(",100,", ",100.00,"), lines[1], *lines[3:]]) + "\r\n"
    again = alice_client.post("/trades/import/", {**post, "file": SimpleUploadedFile("x.csv", resaved.encode())})
    assert again.status_code == 400 and "this file was already imported" in again.content.decode()
    with pytest.raises(CommandError, match="already imported into Alice US"):
        call_command("import_trades", str(write(tmp_path, data)), "--portfolio", "Alice US")
    forced = alice_client.post("/trades/import/", {**post, "again": "on",
                                                   "file": SimpleUploadedFile("copy.csv", data.encode())})
    assert forced.status_code == 302 and Trade.objects.count() == 4 and CashMovement.objects.count() == 2
    call_command("import_trades", str(write(tmp_path, data)), "--portfolio", "Alice US", "--again")
    assert Trade.objects.count() == 6
    assert list(usd_book.imports.values_list("name", "rows", "imported_by__username")) == [
        ("trades.csv", 4, None), ("copy.csv", 4, "alice"), ("mine.csv", 4, "alice")]


def test_a_statement_repeating_rows_already_imported_is_refused_naming_them(tmp_path, usd_book, acme):
    data = FIFO_FILE.replace("LOT-A", "").replace("LOT-B", "")
    call_command("import_trades", str(write(tmp_path, data)), "--portfolio", "Alice US")
    # The next statement: the same four rows (the buy of 100 at 10.00, written differently) and a new one.
    overlapping = data.replace(",100,10,", ",100,10.00,") + "2024-01-05,buy,ACME,5,15,1,,,,new\n"
    with pytest.raises(ImportRejected) as caught:
        services.import_trades(portfolio=usd_book, data=overlapping, name="march.csv")
    assert caught.value.errors == [
        "4 rows repeat executions already in the journal: remove them, or import with 'Import it even if…' "
        "(--again) if they really happened twice",
        "row 2: already in the journal: a deposit of 5000 on 2024-01-02",
        f"row 3: already in the journal: buy 100 ACME @ 10 on 2024-01-02 (trade "
        f"{Trade.objects.get(quantity=100).trade_id})",
        f"row 4: already in the journal: buy 50 ACME @ 12 on 2024-01-03 (trade {Trade.objects.get(quantity=50).trade_id})",
        "row 5: already in the journal: sell 120 ACME @ 15 on 2024-01-04 (recorded exits)",
    ]
    assert Trade.objects.count() == 2 and CashMovement.objects.count() == 1
    # Only the new row: imported. A second buy like an earlier one (another 100 @ 10 that day) with --again.
    services.import_trades(portfolio=usd_book, data=data.splitlines()[0] + "\n2024-01-05,buy,ACME,5,15,1,,,,new\n")
    again = data.splitlines()[0] + "\n2024-01-02,buy,ACME,100,10,1,,,,second order\n"
    with pytest.raises(ImportRejected, match="1 row repeats executions already in the journal"):
        services.import_trades(portfolio=usd_book, data=again)
    services.import_trades(portfolio=usd_book, data=again, again=True)
    assert Trade.objects.count() == 4


def test_the_trade_export_opens_in_excel(api, alice, usd_book):
    # PITFALLS BR-24: a note with é, en dash, euro sign and a curly apostrophe.
    Instrument.objects.create(symbol="NESN.SW", exchange="XSWX", currency="CHF", name="Nestlé S.A.")
    services.record_trade(portfolio=usd_book, user=alice, symbol="NESN.SW", quantity=10, entry_price="98.5",
                          entry_date=dt.date(2024, 3, 8), notes="Nestlé – took profit at 105 €, didn’t add")
    response = api.get(f"{API}/trades/export")
    raw = b"".join(response.streaming_content)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="trades-')
    assert raw.startswith(b"\xef\xbb\xbf")
    for char, encoded in (("é", b"\xc3\xa9"), ("€", b"\xe2\x82\xac"), ("–", b"\xe2\x80\x93"), ("’", b"\xe2\x80\x99")):
        assert encoded in raw, char
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0])[0] == "date"  # no U+FEFF glued to the first header
    assert (rows[0]["date"], rows[0]["symbol"], rows[0]["notes"]) == (
        "2024-03-08", "NESN.SW", "Nestlé – took profit at 105 €, didn’t add")
    # Without the BOM, Excel's Windows-1252 reading would be mojibake: the bytes say so.
    assert "NestlÃ© â€“" in raw[3:].decode("cp1252", errors="replace")


def test_the_snapshot_export_has_the_marks(api, alice, usd_book, acme):
    services.record_trade(portfolio=usd_book, user=alice, symbol="ACME", quantity=100, entry_price="10",
                          entry_date=dt.date(2024, 1, 2))
    services.snapshot_portfolio(portfolio=usd_book)
    response = api.get(f"{API}/portfolio/snapshots/export")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["date"], r["value"], r["cash"], r["invested"]) for r in rows] == [
        ("2024-01-02", "10000.00", "9000.00", "1000.00"), ("2024-01-03", "10200.00", "9000.00", "1200.00"),
        ("2024-01-04", "10500.00", "9000.00", "1500.00"), ("2024-01-05", "10500.00", "9000.00", "1500.00")]
    assert float(rows[1]["daily_return"]) == pytest.approx(0.02)  # 10,200 / 10,000 - 1


def test_the_export_follows_the_list_filters(api, alice, usd_book, acme):
    for day in (dt.date(2024, 1, 2), dt.date(2024, 1, 4)):
        services.record_trade(portfolio=usd_book, user=alice, symbol="ACME", quantity=1, entry_price="10",
                              entry_date=day)
    text = b"".join(api.get(f"{API}/trades/export?start=2024-01-03").streaming_content).decode("utf-8-sig")
    assert [row["date"] for row in csv.DictReader(io.StringIO(text))] == ["2024-01-04"]


def test_the_documented_example_file_imports(usd_book, make_bars):
    from pathlib import Path

    # The instruments of the demo's sample data (bokeh_sampledata: AAPL and MSFT on Nasdaq, IBM on the NYSE).
    for symbol, exchange in (("AAPL", "XNAS"), ("MSFT", "XNAS"), ("IBM", "XNYS")):
        make_bars(symbol, exchange, [])
    services.update_portfolio(usd_book, inception_date=dt.date(2013, 1, 2))
    example = Path(__file__).resolve().parents[2] / "docs" / "journal-example.csv"
    out = io.StringIO()
    call_command("import_trades", str(example), "--portfolio", "Alice US", stdout=out)
    assert "8 rows into Alice US: 3 trades opened, 3 exits recorded, 2 cash movements" in out.getvalue()
    aapl = Trade.objects.get(symbol="AAPL")
    # 15 x (453.62 - 549.03) - 9.95 - 9.95 x 15/40 = -1,431.15 - 9.95 - 3.73125 = -1,444.83125.
    assert (aapl.status, aapl.open_quantity, aapl.pnl) == ("open", D(25), D("-1444.83125"))
    ibm = Trade.objects.get(symbol="IBM")
    assert (ibm.direction, ibm.status, ibm.pnl) == ("short", "closed", D("-305.40"))  # 50 x -5.71 - 19.90


@pytest.mark.parametrize("typed", ["20240105", "2024-W01-5", "2024-1-5"])
def test_the_import_takes_the_dates_the_forms_take(tmp_path, usd_book, acme, typed):
    # date.fromisoformat alone would read 20240105 and 2024-W01-5 as 5 January; the forms would not.
    path = write(tmp_path, FIFO_FILE + f"{typed},buy,ACME,1,15,,,,,\n")
    with pytest.raises(CommandError, match=f"row 6: date: '{typed}' is not a date \\(YYYY-MM-DD\\)"):
        call_command("import_trades", str(path), "--portfolio", "Alice US")


def test_a_negative_fee_row_is_refused_like_on_the_page(tmp_path, usd_book, acme):
    path = write(tmp_path, FIFO_FILE + "2024-01-05,fee,,,,,-5,,,\n2024-01-05,interest,,,,,-2,,,paid\n")
    with pytest.raises(CommandError, match=r"row 6: amount: -5 is negative: give the amount positive"):
        call_command("import_trades", str(path), "--portfolio", "Alice US")


def test_a_file_is_rejected_with_every_bad_row_at_once(tmp_path, usd_book, acme):
    lines = [
        "2024-01-05,buy,ACME,ten,-15,,,,,",     # row 6: two bad cells
        "2024-01-06,buy,ACME,10,15,,,,,",       # row 7: not a session
        "2024-01-05,sell,ACME,31,15,,,,,",      # row 8: more than the 30 open
        "2024-01-05,buy,NOPE,10,15,-1,,,,",     # row 9: unknown symbol, negative commission
        "2024-01-05,fee,,,,,-5,,,",             # row 10: a fee is given positive
    ]
    path = write(tmp_path, FIFO_FILE + "\n".join(lines) + "\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_trades", str(path), "--portfolio", "Alice US")
    message = str(caught.value)
    assert message.splitlines()[1:] == [
        "  row 6: quantity: 'ten' is not a number",
        "  row 6: price: -15 must be more than 0",
        "  row 7: date: Sat 2024-01-06 is not an XNYS session (the sessions either side are 2024-01-05 and 2024-01-08)",
        "  row 8: quantity: 31 is more than the 30 open in long ACME on 2024-01-05",
        "  row 9: commission: -1 must not be negative",
        "  row 9: symbol: unknown symbol 'NOPE': no such instrument",
        "  row 10: amount: -5 is negative: give the amount positive (the kind gives the sign: a fee goes out)",
    ]
    assert not Trade.objects.exists() and not CashMovement.objects.exists()


def test_past_fifty_problems_the_rest_are_counted(tmp_path, usd_book, acme):
    bad = "".join(f"2024-01-05,buy,ACME,{n},x,,,,,\n" for n in range(1, 61))
    with pytest.raises(CommandError) as caught:
        call_command("import_trades", str(write(tmp_path, FIFO_FILE + bad)), "--portfolio", "Alice US")
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 51 and lines[0] == "  row 6: price: 'x' is not a number"
    assert lines[49] == "  row 55: price: 'x' is not a number" and lines[50] == "  and 10 more"


def test_the_csv_exports_write_numbers_as_the_api_does(api, alice, usd_book, series):
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    # A tiny move: 10,000 -> 9,999.000500 is a daily return of -9.995e-05, which str() writes with an exponent.
    series("ACME", "XNYS", dict(zip(days, [622.4, 622.3000500, 622.3000500])))
    trade = services.record_trade(portfolio=usd_book, user=alice, symbol="ACME", quantity=10, entry_price="622.4",
                                  entry_date=days[0], entry_commission="5")
    services.close_trade(trade, user=alice, date=days[2], price="622.3", quantity=3, commission="1.25")
    services.snapshot_portfolio(portfolio=usd_book)
    text = b"".join(api.get(f"{API}/trades/export").streaming_content).decode("utf-8-sig")
    [row] = list(csv.DictReader(io.StringIO(text)))
    item = api.get(f"{API}/trades").json()["items"][0]
    assert (row["entry_price"], row["entry_commission"], row["quantity"]) == ("622.40", "5.00", "10")
    for column in ("quantity", "entry_price", "entry_commission", "exit_price", "fees", "pnl", "pnl_base"):
        assert row[column] == item[column], column
    # 3 x (622.30 - 622.40) - 1.25 - 5 x 3/10 = -3.05 (exact here); pnl_pct as plain digits.
    assert row["pnl"] == "-3.05" and "e" not in row["pnl_pct"] and float(row["pnl_pct"]) == item["pnl_pct"]
    text = b"".join(api.get(f"{API}/portfolio/snapshots/export").streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    items = api.get(f"{API}/portfolio/snapshots").json()["items"]
    for row, item in zip(rows, items, strict=True):
        for column in ("value", "cash", "invested", "flows"):
            assert row[column] == (item[column] or ""), column
        for column in ("daily_return", "cumulative_return"):
            assert "e" not in row[column].lower(), (column, row[column])
            assert (float(row[column]) if row[column] else None) == item[column]
    assert rows[1]["daily_return"].startswith("-0.0000")


def test_the_upload_page_lists_fifty_problems_and_counts_the_rest(alice_client, usd_book, acme):
    bad = FIFO_FILE + "".join(f"2024-01-05,buy,ACME,{n},x,,,,,\n" for n in range(1, 61))
    response = alice_client.post("/trades/import/", {"portfolio": usd_book.pk,
                                                     "file": SimpleUploadedFile("mine.csv", bad.encode())})
    body = response.content.decode()
    assert response.status_code == 400 and body.count("<li>row ") == 50 and "<li>and 10 more</li>" in body
    assert not Trade.objects.exists() and not CashMovement.objects.exists()
