"""The trade file: a CSV of executions and cash movements, one per row (docs/journal.md has the format).

Reading checks every cell of every row and names each bad one ("row 7: quantity: 'ten' is not a
number"); services.import_trades then applies the good rows in date order, where a sale can still be
refused for the state of the book ("row 9: quantity: 150 is more than the 100 open in long AAPL on
2024-03-08"), and rejects the file with every problem of both kinds.
"""
import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from parakeet.uploads import UploadError, decode_text

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
# An import lists at most this many problems, then says how many more there are.
MAX_ERRORS = 50
# An uploaded trade file holds at most this many rows: one request applies them all in one transaction,
# about 5 ms a row, so a bigger file is split, or loaded with `manage.py import_trades` (no row limit).
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Row:
    """One row of a trade file, typed; `number` counts the header as row 1, as a spreadsheet does.

    A bad row has its `problems` ("column: reason", one per bad cell) and None for the cells that could
    not be read; it is never applied, but what can still be checked of it is (its symbol, its date).
    """

    number: int
    date: dt.date | None
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
    problems: tuple = ()

    @property
    def is_cash(self):
        return self.action in CASH


def read_rows(data, *, name=None, max_rows=MAX_ROWS):
    """The rows of a trade file (bytes or text) in file order, the bad ones with their `problems`.
    ImportRejected when the file cannot be read at all (not UTF-8 text, no header, a required column
    missing, no rows, more than `max_rows` rows; None: no limit)."""
    if isinstance(data, bytes):
        try:
            data = decode_text(data, name or "the file")
        except UploadError as exc:
            raise ImportRejected([exc.problem], file=name) from None
    data = data.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(data))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected(["the file is empty; the first row must be the header"], file=name) from None
    except csv.Error as exc:
        raise ImportRejected([f"row 1: {exc}"], file=name) from None
    columns = {}
    for index, title in enumerate(header):
        key = title.strip().lower().replace(" ", "_").replace("-", "_")
        if key in ALIASES:
            columns.setdefault(ALIASES[key], index)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ImportRejected([f"row 1: the header has no {' or '.join(repr(m) for m in missing)} column "
                              f"(columns: {', '.join(h.strip() for h in header)})"], file=name)
    rows = []
    number = 1
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # blank lines at the end of a spreadsheet export
            if max_rows is not None and len(rows) >= max_rows:
                raise ImportRejected([f"more than {max_rows:,} rows; split the file, or load it with "
                                      "`manage.py import_trades`"], file=name)
            rows.append(_row(number, cells, columns))
    except csv.Error as exc:
        raise ImportRejected([f"row {number + 1}: {exc}"], file=name) from None
    if not rows:
        raise ImportRejected(["the file has a header but no rows"], file=name)
    return rows


def _row(number, cells, columns):
    """The Row of a line of cells, with a problem for every bad cell ("quantity: 'ten' is not a number")."""
    def cell(name):
        index = columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    problems = []

    def number_of(name, required=False):
        try:
            return _number(cell(name), name, required)
        except ValueError as exc:
            problems.append(str(exc))
            return None

    action = cell("action").lower()
    if action not in ACTIONS:
        problems.append(f"action: {cell('action')!r} is not one of {', '.join(ACTIONS)}")
    try:
        day = parse_date(cell("date"))
    except ValueError as exc:
        problems.append(f"date: {exc}")
        day = None
    values = {"number": number, "date": day, "action": action, "symbol": cell("symbol"),
              "trade_id": cell("trade_id"), "strategy": cell("strategy"), "signal": cell("signal"),
              "notes": cell("notes")}
    if action not in ACTIONS:
        return Row(**values, problems=tuple(problems))  # what else it needs depends on the action
    if action in CASH:
        amount = number_of("amount", required=True)
        if amount == 0:
            problems.append("amount: must not be 0")
        return Row(**values, amount=amount, problems=tuple(problems))
    if not values["symbol"]:
        problems.append(f"symbol: a {action} needs a symbol")
    quantity = number_of("quantity", required=True)
    if quantity is not None and quantity <= 0:
        problems.append(f"quantity: {cell('quantity')} must be more than 0")
    price = number_of("price", required=True)
    if price is not None and price <= 0:
        problems.append(f"price: {cell('price')} must be more than 0")
    commission = number_of("commission") or Decimal(0)
    if commission < 0:
        problems.append(f"commission: {cell('commission')} must not be negative")
    return Row(**values, quantity=quantity, price=price, commission=commission, problems=tuple(problems))


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
