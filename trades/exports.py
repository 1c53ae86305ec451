"""CSV exports of the journal and the snapshots that open correctly in Excel.

UTF-8 with a byte-order mark (PITFALLS BR-24): without it Excel reads the file as Windows-1252 and shows
"NestlÃ©"; with it, "Nestlé". Numbers are written as the API writes them (trades.formats): quantities as
stored, prices and commissions with at least two decimals, computed money to the cent, returns as plain
decimals (never an exponent); a dot, no thousands separator.
"""
import csv
import io

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.text import slugify

from .formats import cents_text, float_text, money_text, plain

BOM = "\ufeff"
TRADE_COLUMNS = ["date", "symbol", "exchange", "currency", "direction", "quantity", "entry_price",
                 "entry_commission", "exit_date", "exit_price", "closed_quantity", "fees", "pnl", "pnl_pct",
                 "pnl_base", "base_currency", "status", "strategy", "signal_ref", "notes", "trade_id", "portfolio",
                 "version_known_at"]
SNAPSHOT_COLUMNS = ["date", "value", "cash", "invested", "flows", "daily_return", "cumulative_return",
                    "volatility_21d", "sharpe_21d", "unvalued_reason"]
# How each numeric column is written (the API's schema types: Quantity, Money, Cents, float); others: _text.
FORMATS = {
    "quantity": plain, "closed_quantity": plain, "entry_price": money_text, "entry_commission": money_text,
    "exit_price": money_text, "fees": cents_text, "pnl": cents_text, "pnl_base": cents_text, "pnl_pct": float_text,
    "value": cents_text, "cash": cents_text, "invested": cents_text, "flows": cents_text,
    "daily_return": float_text, "cumulative_return": float_text, "volatility_21d": float_text,
    "sharpe_21d": float_text,
}


def _text(value, column=None):
    if value is None:
        return ""
    if column in FORMATS:
        return FORMATS[column](value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _lines(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield BOM + buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_text(v, column) for v, column in zip(row, header)])
        yield buffer.getvalue()


def trade_rows(rows):
    """CSV rows of Trades, or of TradeVersions (an `as_of` export)."""
    for row in rows.iterator(chunk_size=2000):
        trade = row.trade if hasattr(row, "superseded_at") else row
        instrument, portfolio = row.instrument, trade.portfolio
        yield [row.entry_date, row.symbol, instrument.exchange, instrument.currency, row.direction, row.quantity,
               row.entry_price, row.entry_commission, row.exit_date, row.exit_price, row.closed_quantity, row.fees,
               row.pnl, row.pnl_pct, row.pnl_base, portfolio.base_currency, row.status, row.strategy_name,
               row.signal_ref, row.notes, trade.trade_id, portfolio.name, row.knowledge_time]


def _response(lines, name):
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def trades_csv_response(rows, *, as_of=None):
    stamp = (as_of or timezone.now()).strftime("%Y%m%d")
    return _response(_lines(TRADE_COLUMNS, trade_rows(rows)), f"trades-{stamp}.csv")


def snapshots_csv_response(portfolio, snapshots):
    """snapshots: SnapshotOut dicts (summary.snapshot_rows)."""
    rows = ([s[c] for c in SNAPSHOT_COLUMNS] for s in snapshots)
    return _response(_lines(SNAPSHOT_COLUMNS, rows), f"snapshots-{slugify(portfolio.name) or portfolio.pk}.csv")
