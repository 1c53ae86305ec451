"""The trade file: a CSV of executions and cash movements, one per row (docs/journal.md has the format).

Reading checks every row's shape and names each bad one ("row 7: quantity: 'ten' is not a number");
services.import_trades then applies the rows in date order, where a sale can still be refused for the
state of the book ("row 9: quantity: 150 is more than the 100 open in long AAPL on 2024-03-08").
"""
import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .errors import ImportRejected
from .formats import parse_date

OPENS = {"buy": "long", "short": "short"}
CLOSES = {"sell": "long", "cover": "short"}
CASH = ("deposit", "withdrawal", "dividend", "fee", "interest")
ACTIONS = (*OPENS, *CLOSES, *CASH)
ALIASES = {
    "date": "date", "trade_date": "date",
    "action": "action", "side": "action", "type": "action",
    "symbol": "symbol", "ticker": "symbol", "code": "symbol",
    "quantity": "quantity", "qty": "quantity", "shares": "quantity",
    "price": "price",
    "commission": "commission", "brokerage": "commission", "fees": "commission",
    "amount": "amount",
    "trade_id": "trade_id", "reference": "trade_id",
    "strategy": "strategy", "strategy_name": "strategy",
    "signal": "signal", "signal_ref": "signal",
    "notes": "notes", "note": "notes",
}
REQUIRED = ("date", "action")
MAX_ERRORS = 50


@dataclass(frozen=True)
class Row:
    """One row of a trade file, typed; `number` counts the header as row 1, as a spreadsheet does."""

    number: int
    date: dt.date
    action: str
    symbol: str = ""
    quantity: Decimal | None = None
    price: Decimal | None = None
    commission: Decimal = Decimal(0)
    amount: Decimal | None = None
    trade_id: str = ""
    strategy: str = ""
    signal: str = ""
    notes: str = ""

    @property
    def is_cash(self):
        return self.action in CASH


def read_rows(data, *, name=None):
    """The rows of a trade file (bytes or text), in file order; ImportRejected listing every bad row."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportRejected([f"the file is not UTF-8 text (byte {exc.start} cannot be read); "
                                  "save it as CSV UTF-8"], file=name) from None
    data = data.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(data))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected(["the file is empty; the first row must be the header"], file=name) from None
    columns = {}
    for index, title in enumerate(header):
        key = title.strip().lower().replace(" ", "_").replace("-", "_")
        if key in ALIASES:
            columns.setdefault(ALIASES[key], index)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ImportRejected([f"row 1: the header has no {' or '.join(repr(m) for m in missing)} column "
                              f"(columns: {', '.join(h.strip() for h in header)})"], file=name)
    rows, errors = [], []
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines at the end of a spreadsheet export
        try:
            rows.append(_row(number, cells, columns))
        except ValueError as exc:
            errors.append(f"row {number}: {exc}")
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise ImportRejected(errors, file=name)
    if not rows:
        raise ImportRejected(["the file has a header but no rows"], file=name)
    return rows


def _row(number, cells, columns):
    def cell(name):
        index = columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    action = cell("action").lower()
    if action not in ACTIONS:
        raise ValueError(f"action: {cell('action')!r} is not one of {', '.join(ACTIONS)}")
    try:
        day = parse_date(cell("date"))
    except ValueError as exc:
        raise ValueError(f"date: {exc}") from None
    values = {"number": number, "date": day, "action": action, "symbol": cell("symbol"),
              "trade_id": cell("trade_id"), "strategy": cell("strategy"), "signal": cell("signal"),
              "notes": cell("notes")}
    if action in CASH:
        amount = _number(cell("amount"), "amount", required=True)
        if amount == 0:
            raise ValueError("amount: must not be 0")
        return Row(**values, amount=amount)
    if not values["symbol"]:
        raise ValueError(f"symbol: a {action} needs a symbol")
    quantity = _number(cell("quantity"), "quantity", required=True)
    if quantity <= 0:
        raise ValueError(f"quantity: {cell('quantity')} must be more than 0")
    price = _number(cell("price"), "price", required=True)
    if price <= 0:
        raise ValueError(f"price: {cell('price')} must be more than 0")
    commission = _number(cell("commission"), "commission") or Decimal(0)
    if commission < 0:
        raise ValueError(f"commission: {cell('commission')} must not be negative")
    return Row(**values, quantity=quantity, price=price, commission=commission)


def _number(text, name, required=False):
    if not text:
        if required:
            raise ValueError(f"{name}: missing")
        return None
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{name}: {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{name}: {text!r} is not a number")
    return value
