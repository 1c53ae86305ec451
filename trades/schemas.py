"""What the journal and portfolio API reads and answers.

Money and quantities are decimals, sent as JSON strings and published as `type: string, format: decimal`
(PITFALLS BR-22: a client that parses them gets the decimal, never 73.40000000000003), written by
trades.formats: quantities as stored ("2.5"); prices and commissions as typed, at least two decimals
("180.10", Money); money the journal computed (P&L, fees, cash, values, costs) rounded half up to the
cent ("-1605.13", Cents), the stored value staying exact. Returns, ratios and rates are JSON numbers;
an undefined one is null.
"""
import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional

from ninja import Field, Schema
from pydantic import BaseModel, PlainSerializer, WithJsonSchema, model_validator

from .formats import cents_text, money_text, plain

# A price or commission as typed (exact, at least two decimals): "180.10", "0.0045", "3.73125".
Money = Annotated[
    Decimal, PlainSerializer(money_text, return_type=str),
    WithJsonSchema({"type": "string", "format": "decimal", "examples": ["180.10"]}, mode="serialization"),
]
# Money the journal computed, rounded half up to the cent: "73.40", "-1605.13".
Cents = Annotated[
    Decimal, PlainSerializer(cents_text, return_type=str),
    WithJsonSchema({"type": "string", "format": "decimal", "examples": ["73.40"]}, mode="serialization"),
]
Quantity = Annotated[
    Decimal, PlainSerializer(plain, return_type=str),
    WithJsonSchema({"type": "string", "format": "decimal", "examples": ["100", "2.5"]}, mode="serialization"),
]
# Knowledge times to the microsecond (Django's encoder would cut them to milliseconds, and a version's
# knowledge_time sent back as `as_of` must find that version).
Moment = Annotated[
    dt.datetime, PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]
# Bounds the journal checks (services._check) rather than pydantic, so that a 422 names every bad field at
# once (an unknown symbol with a negative quantity and a Saturday); the schema still announces them.
POSITIVE = {"exclusiveMinimum": 0}
NOT_NEGATIVE = {"minimum": 0}

Sort = Literal["entry_date", "-entry_date", "exit_date", "-exit_date", "symbol", "-symbol", "quantity", "-quantity",
               "pnl", "-pnl", "pnl_pct", "-pnl_pct", "pnl_base", "-pnl_base", "status", "-status", "id", "-id"]


class ExitIn(Schema):
    """One exit leg as executed (after a split: the post-split quantity and price the broker reports)."""

    date: dt.date
    quantity: Decimal = Field(json_schema_extra=POSITIVE)
    price: Decimal = Field(json_schema_extra=POSITIVE)
    commission: Decimal = Field(Decimal(0), json_schema_extra=NOT_NEGATIVE)


class TradeIn(Schema):
    """POST /trades and PUT /trades/{id}: the whole trade.

    Give `quantity`, or `target_weight` (a fraction of the book's equity on the entry date, turned into
    whole shares at the entry price). Exits: the `exits` list, or the old single exit `exit_date` +
    `exit_price` (+ `exit_commission`) closing the whole quantity.
    """

    portfolio: Optional[str] = Field(None, description="Portfolio id or name; may be left out when you have one")
    symbol: str = Field(description="AAPL, XASX:BHP or BHP.AX")
    direction: Literal["long", "short"] = "long"
    quantity: Optional[Decimal] = Field(None, description="Shares opened", json_schema_extra=POSITIVE)
    target_weight: Optional[float] = Field(None, description="Size from equity instead: 0.3 = 30%",
                                           json_schema_extra={"minimum": -1, "maximum": 1})
    entry_date: dt.date
    entry_price: Decimal = Field(json_schema_extra=POSITIVE)
    entry_commission: Decimal = Field(Decimal(0), json_schema_extra=NOT_NEGATIVE)
    exits: Optional[list[ExitIn]] = None
    exit_date: Optional[dt.date] = None
    exit_price: Optional[Decimal] = Field(None, json_schema_extra=POSITIVE)
    exit_commission: Decimal = Field(Decimal(0), json_schema_extra=NOT_NEGATIVE)
    strategy: str = ""
    signal_ref: str = ""
    notes: str = ""
    trade_id: Optional[str] = Field(None, description="The desk's reference (made up when absent)",
                                    json_schema_extra={"maxLength": 40})
    reason: str = Field("", max_length=200, description="Why (kept in the history)")

    @model_validator(mode="after")
    def one_way_to_exit(self):
        if self.exits is not None and (self.exit_date or self.exit_price):
            raise ValueError("give `exits` or `exit_date` + `exit_price`, not both")
        if bool(self.exit_date) != bool(self.exit_price):
            raise ValueError("`exit_date` and `exit_price` go together")
        return self


class TradePatch(Schema):
    """PATCH /trades/{id}: only the fields given change. `exit_date` + `exit_price` (+ `exit_quantity`,
    default all still open, and `exit_commission`) record an exit, partial or whole; `exits` replaces the list."""

    symbol: Optional[str] = None
    direction: Optional[Literal["long", "short"]] = None
    quantity: Optional[Decimal] = Field(None, json_schema_extra=POSITIVE)
    entry_date: Optional[dt.date] = None
    entry_price: Optional[Decimal] = Field(None, json_schema_extra=POSITIVE)
    entry_commission: Optional[Decimal] = Field(None, json_schema_extra=NOT_NEGATIVE)
    exits: Optional[list[ExitIn]] = None
    exit_date: Optional[dt.date] = None
    exit_price: Optional[Decimal] = Field(None, json_schema_extra=POSITIVE)
    exit_quantity: Optional[Decimal] = Field(None, json_schema_extra=POSITIVE)
    exit_commission: Decimal = Field(Decimal(0), json_schema_extra=NOT_NEGATIVE)
    strategy: Optional[str] = None
    signal_ref: Optional[str] = None
    notes: Optional[str] = None
    reason: str = Field("", max_length=200)

    @model_validator(mode="after")
    def one_way_to_exit(self):
        if self.exits is not None and (self.exit_date or self.exit_price):
            raise ValueError("give `exits` or `exit_date` + `exit_price`, not both")
        if bool(self.exit_date) != bool(self.exit_price):
            raise ValueError("`exit_date` and `exit_price` go together")
        if self.exit_quantity is not None and not self.exit_date:
            raise ValueError("`exit_quantity` needs `exit_date` and `exit_price`")
        return self


class CancelIn(Schema):
    reason: str = Field("", max_length=200)


# Plain pydantic models for the rows of a list, not ninja Schemas: the rows are dicts already, and a
# Schema's attribute getter around each made a 100-trade page several times slower (as marketdata.schemas).
class ExitOut(BaseModel):
    date: dt.date
    quantity: Quantity
    price: Money
    commission: Money


class TradeOut(BaseModel):
    """A trade as known (now, or at `as_of`). P&L is realised on the closed quantity, after every fee."""

    id: int
    trade_id: str
    portfolio: str
    version: int
    symbol: str
    exchange: str
    instrument: str = Field(description="The unambiguous key, e.g. XASX:BHP")
    currency: str = Field(description="The trade's currency: its instrument's")
    base_currency: str = Field(description="The portfolio's currency, of pnl_base")
    direction: str
    status: str
    quantity: Quantity
    open_quantity: Quantity = Field(description="Entry shares still open (splits since the entry undone); 0 once cancelled")
    entry_date: dt.date
    entry_price: Money
    entry_commission: Money
    exits: list[ExitOut]
    exit_date: Optional[dt.date] = Field(description="The last exit's date")
    exit_price: Optional[Money] = Field(description="Average exit price, weighted by quantity")
    fees: Cents = Field(description="Commission on every leg (to the cent)")
    pnl: Optional[Cents] = Field(description="Realised P&L in the trade's currency, null before any exit (to the cent)")
    pnl_pct: Optional[float] = Field(description="pnl / entry notional of the closed quantity (0.05 = 5%)")
    pnl_base: Optional[Cents] = Field(description="Realised P&L in the portfolio's currency, each leg at its day's "
                                                  "rate (to the cent)")
    pnl_base_missing: Optional[str] = Field(description="Why pnl_base is null although there are exits")
    strategy: str
    signal_ref: str
    notes: str
    event_time: Moment
    knowledge_time: Moment = Field(description="When this version was recorded")


class TradePage(Schema):
    items: list[TradeOut]
    count: int
    as_of: Optional[Moment] = Field(description="The knowledge time answered for (null: now)")


class VersionOut(TradeOut):
    superseded_at: Optional[Moment]
    change_kind: str = Field(description="created, imported, edited, closed, cancelled or corrected")
    changed_by: Optional[str]
    change_reason: str


class PeriodOut(Schema):
    since: Optional[dt.date] = Field(description="The close the period is measured from")
    pnl: Optional[Cents] = Field(description="Value change less deposits and withdrawals")
    twr: Optional[float] = Field(description="Time-weighted return of the period")


class PositionOut(Schema):
    instrument: str
    symbol: str
    currency: str
    direction: str
    quantity: Quantity = Field(description="Shares held on the valuation day (splits since the entry applied)")
    lots: int
    average_price: Money = Field(description="Average entry price of the open lots, in the trade's currency")
    price: Optional[Money] = Field(description="Last close on or before the valuation day")
    price_date: Optional[dt.date]
    fx_rate: Optional[float] = Field(description="Trade currency -> base currency on the valuation day")
    market_value: Optional[Cents] = Field(description="In the base currency; shorts negative")
    cost: Cents = Field(description="Entry value of the open shares in the base currency at the entry rate: paid "
                                    "for a long (commission added), received for a short (commission deducted)")
    unrealised_pnl: Optional[Cents]
    unrealised_pct: Optional[float]
    weight: Optional[float] = Field(description="Market value / portfolio value")


class TradeBrief(Schema):
    id: int
    trade_id: str
    symbol: str
    exit_date: Optional[dt.date]
    pnl_base: Cents
    pnl_pct: Optional[float]


class SymbolPnl(Schema):
    instrument: str
    symbol: str
    realised: Cents
    unrealised: Cents
    total: Cents


class MetricsOut(Schema):
    values: dict[str, Optional[float]] = Field(
        description="total_return, cagr, volatility, sharpe, sortino, max_drawdown, var_95, cvar_95, best_month, "
                    "worst_month, calmar, win_rate, profit_factor (quant.metrics.summarize; docs/metrics.md)")
    undefined: dict[str, str] = Field(description="Why a value is null")
    drawdown_dates: dict[str, Optional[dt.date]]


class SummaryOut(Schema):
    portfolio: str
    base_currency: str
    inception_date: dt.date
    valuation_date: Optional[dt.date] = Field(description="The last valued day the figures are for")
    as_of: Optional[Moment] = Field(description="The knowledge time answered for (null: now)")
    computed: str = Field(description="stored (the daily snapshots) or on_the_fly (as_of, or snapshots pending)")
    snapshots_stale_from: Optional[dt.date] = Field(description="Stored snapshots from this day wait to be recomputed")
    snapshots_until: Optional[dt.date] = Field(description="The last stored snapshot (null with as_of)")
    prices_until: Optional[dt.date] = Field(description="The last day with prices for the book: its instruments' or "
                                                        "its calendar's exchange's newest bar (null with as_of)")
    notice: Optional[str] = Field(description="What to know about the figures: prices newer than the stored "
                                              "snapshots (being brought up to date), or a change being recomputed")
    starting_cash: Money
    value: Optional[Cents]
    cash: Optional[Cents]
    invested: Optional[Cents]
    net_flows: Cents = Field(description="Deposits less withdrawals so far")
    income: Cents = Field(description="Dividends and interest received less fees paid")
    total_pnl: Optional[Cents] = Field(description="value - starting_cash - net_flows")
    total_return: Optional[float] = Field(description="Time-weighted, since the inception")
    realised_pnl: Cents
    unrealised_pnl: Optional[Cents]
    day: PeriodOut
    week: PeriodOut
    month: PeriodOut
    volatility_21d: Optional[float]
    sharpe_21d: Optional[float]
    open_positions: list[PositionOut]
    trades_open: int
    trades_closed: int
    win_rate: Optional[float] = Field(description="Share of closed trades with pnl_base > 0")
    best_trade: Optional[TradeBrief]
    worst_trade: Optional[TradeBrief]
    pnl_by_symbol: list[SymbolPnl]
    metrics: MetricsOut
    unvalued_days: int
    unvalued_reason: Optional[str] = Field(description="Why the latest unvalued day has no value")


class SnapshotOut(Schema):
    date: dt.date
    value: Optional[Cents]
    cash: Optional[Cents]
    invested: Optional[Cents]
    flows: Cents
    daily_return: Optional[float]
    cumulative_return: Optional[float]
    volatility_21d: Optional[float]
    sharpe_21d: Optional[float]
    unvalued_reason: Optional[str]


class SnapshotsOut(Schema):
    portfolio: str
    base_currency: str
    as_of: Optional[Moment]
    computed: str
    count: int
    items: list[SnapshotOut]


class Message(Schema):
    detail: str


class ValidationProblem(Schema):
    type: str
    loc: list[Any]
    msg: str


class ValidationErrorOut(Schema):
    detail: list[ValidationProblem]
