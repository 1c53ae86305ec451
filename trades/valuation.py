"""Reading a book for quant: the journal as known (now or at a moment), its market data, its daily marks.

Reads only; services.snapshot_portfolio writes what compute_snapshots returns. Prices come from the
Parquet panels (marketdata.panels.load_panel, the one loader of series), a single day's prices from
the database; the arithmetic is quant.portfolio's.
"""
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from marketdata import calendars, freshness
from marketdata.models import CALENDAR_OF, CorporateAction, Exchange, Instrument, PriceBar
from marketdata.panels import PanelsMissing, PanelsStale, load_panel, refresh_panels
from quant import portfolio as book

from .models import CashMovement, PortfolioSnapshot, Trade, TradeExit, TradeStatus, TradeVersion



@dataclass
class TradeState:
    """One trade as the journal knew it: what the marks need, money as Decimal."""

    id: int
    trade_id: str
    instrument_id: int
    key: str
    symbol: str
    currency: str
    direction: str
    quantity: Decimal
    entry_date: dt.date
    entry_price: Decimal
    entry_commission: Decimal
    status: str
    closed_quantity: Decimal = Decimal(0)
    exits: list = field(default_factory=list)  # [(date, quantity, price, commission)]
    pnl: Decimal | None = None
    pnl_pct: float | None = None
    pnl_base: Decimal | None = None
    strategy_name: str = ""

    @property
    def open_quantity(self):
        return self.quantity - self.closed_quantity


@dataclass
class Journal:
    """A portfolio's live trades and cash movements, as known at `as_of` (None: now)."""

    portfolio: object
    trades: list
    movements: list  # [(date, signed amount, kind)]
    as_of: dt.datetime | None = None

    @property
    def instrument_ids(self):
        return sorted({t.instrument_id for t in self.trades})


TRADE_COLUMNS = ("id", "trade_id", "instrument_id", "instrument__exchange", "symbol", "instrument__currency",
                 "direction", "quantity", "entry_date", "entry_price", "entry_commission", "status",
                 "closed_quantity", "pnl", "pnl_pct", "pnl_base", "strategy_name")


def load_journal(portfolio, as_of=None):
    """The portfolio's trades (cancelled ones left out) and live cash movements, as known at `as_of`.

    as_of: an aware datetime; None reads the current journal. Three queries.
    """
    if as_of is None:
        rows = Trade.objects.live().filter(portfolio=portfolio).values_list(*TRADE_COLUMNS)
        exits = TradeExit.objects.filter(version__trade__portfolio=portfolio, version__superseded_at__isnull=True)
        exit_owner = "version__trade_id"
        movements = CashMovement.objects.live().filter(portfolio=portfolio)
    else:
        versions = TradeVersion.objects.known_at(as_of).filter(trade__portfolio=portfolio).exclude(
            status=TradeStatus.CANCELLED)
        columns = ("trade_id", "trade__trade_id", *TRADE_COLUMNS[2:])
        rows = versions.values_list(*columns)
        exits = TradeExit.objects.filter(version__in=versions.values("id"))
        exit_owner = "version__trade_id"
        movements = CashMovement.objects.filter(portfolio=portfolio).known_at(as_of)
    trades = {}
    for (pk, trade_id, instrument_id, exchange, symbol, currency, direction, quantity, entry_date, entry_price,
         entry_commission, status, closed, pnl, pnl_pct, pnl_base, strategy) in rows:
        trades[pk] = TradeState(
            id=pk, trade_id=trade_id, instrument_id=instrument_id, key=f"{exchange}:{symbol}", symbol=symbol,
            currency=currency, direction=direction, quantity=quantity, entry_date=entry_date,
            entry_price=entry_price, entry_commission=entry_commission, status=status, closed_quantity=closed,
            pnl=pnl, pnl_pct=pnl_pct, pnl_base=pnl_base, strategy_name=strategy)
    for owner, date, quantity, price, commission in exits.order_by("date", "id").values_list(
            exit_owner, "date", "quantity", "price", "commission"):
        if owner in trades:
            trades[owner].exits.append((date, quantity, price, commission))
    cash = [(date, amount, kind) for date, amount, kind in movements.order_by("date", "id").values_list(
        "date", "amount", "kind")]
    return Journal(portfolio=portfolio, trades=sorted(trades.values(), key=lambda t: (t.entry_date, t.id)),
                   movements=cash, as_of=as_of)


def legs_frame(journal):
    """One row per trade leg for quant.portfolio.mark_to_market: date, key, currency, shares, cash, label."""
    rows = []
    for t in journal.trades:
        sign = 1.0 if t.direction == book.LONG else -1.0
        q, p, c = float(t.quantity), float(t.entry_price), float(t.entry_commission)
        action = "buy" if sign > 0 else "short sale"
        rows.append((t.entry_date, t.key, t.currency, sign * q, -sign * q * p - c,
                     f"the {action} of {t.symbol} ({t.trade_id})"))
        for date, quantity, price, commission in t.exits:
            q, p, c = float(quantity), float(price), float(commission)
            action = "sale" if sign > 0 else "buy-back"
            rows.append((date, t.key, t.currency, -sign * q, sign * q * p - c,
                         f"the {action} of {t.symbol} ({t.trade_id})"))
    frame = pd.DataFrame(rows, columns=["date", "key", "currency", "shares", "cash", "label"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def movements_frame(journal, flows_from=None):
    """Cash movements for mark_to_market: date, amount (float), external (deposit or withdrawal).

    A movement dated before `flows_from` is part of the opening balance, not a flow of the window.
    """
    rows = [(date, float(amount), kind in CashMovement.EXTERNAL and (flows_from is None or date >= flows_from))
            for date, amount, kind in journal.movements]
    frame = pd.DataFrame(rows, columns=["date", "amount", "external"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["external"] = frame["external"].astype(bool)
    return frame


# --- market data ---------------------------------------------------------------------------------

def fx_instruments(currencies, base):
    """{currency: (FX instrument, invert)} for converting each currency into `base`.

    A pair CCYBASE (e.g. USDAUD, AUD per USD) is used as is; BASECCY (AUDUSD, USD per AUD) inverted.
    Currencies without either pair are left out (their amounts have no rate).
    """
    wanted = {c for c in currencies if c != base}
    if not wanted:
        return {}
    names = {f"{c}{base}": (c, False) for c in wanted} | {f"{base}{c}": (c, True) for c in wanted}
    found = {}
    for instrument in Instrument.objects.filter(exchange=Exchange.FX, symbol__in=list(names)).order_by("symbol"):
        currency, invert = names[instrument.symbol]
        # The direct quote wins when a book has both.
        if currency not in found or found[currency][1]:
            found[currency] = (instrument, invert)
    return found


def latest_closes(instrument_ids, day):
    """{instrument id: (date, close)}: each instrument's last usable close on or before `day` (one query)."""
    last = (PriceBar.objects.clean().filter(instrument=OuterRef("pk"), date__lte=day, close__isnull=False)
            .order_by("-date"))
    rows = (Instrument.objects.filter(pk__in=list(instrument_ids))
            .annotate(last_date=Subquery(last.values("date")[:1]), last_close=Subquery(last.values("close")[:1]))
            .values_list("pk", "last_date", "last_close"))
    return {pk: (date, close) for pk, date, close in rows if date is not None}


def _with_bars(instrument_ids):
    return set(PriceBar.objects.filter(instrument_id__in=list(instrument_ids)).values_list(
        "instrument_id", flat=True).distinct())


def panel_closes(instruments, start, end):
    """Raw closes of `instruments` over [start, end] from the Parquet panels, one column per key.

    Panels lagging the database are refreshed first for the exchanges concerned (only the files whose
    bars changed are rewritten), so a snapshot never marks a book on prices the panels have not caught
    up with. Each exchange is read on its own, so only its bars are checked for freshness.
    """
    by_exchange = {}
    with_bars = _with_bars(i.pk for i in instruments)
    for instrument in instruments:
        if instrument.pk in with_bars:
            by_exchange.setdefault(instrument.exchange, []).append(instrument.pk)
    frames = []
    for exchange, ids in sorted(by_exchange.items()):
        try:
            frames.append(load_panel(field="close", exchange=exchange, instrument_ids=ids, start=start, end=end))
        except (PanelsMissing, PanelsStale):
            refresh_panels(exchange=exchange)
            frames.append(load_panel(field="close", exchange=exchange, instrument_ids=ids, start=start, end=end,
                                     check=False))
    if not frames:
        return pd.DataFrame(index=pd.DatetimeIndex([]))
    return pd.concat(frames, axis=1).sort_index()


def database_closes(instruments, start, end):
    """The same frame as panel_closes, read from the database: for a few days of a few instruments."""
    rows = (PriceBar.objects.clean().filter(instrument__in=list(instruments), date__gte=start, date__lte=end,
                                            close__isnull=False)
            .values_list("instrument__exchange", "instrument__symbol", "date", "close"))
    frame = pd.DataFrame(list(rows), columns=["exchange", "symbol", "date", "close"])
    if not len(frame):
        return pd.DataFrame(index=pd.DatetimeIndex([]))
    frame["key"] = frame["exchange"] + ":" + frame["symbol"]
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.pivot(index="date", columns="key", values="close").sort_index()


def market_data(journal, start, end, *, source="panels"):
    """(closes, splits, fx) for marking the journal's book on the days [start, end].

    closes: raw closes of its instruments and FX pairs over [start, end], plus each one's last close
    before `start` from the database (so a position is marked at its last price, a suspended stock at its
    last close); splits: its instruments' splits (key, ex_date, ratio); fx: base units per unit of each
    foreign currency, by date.
    source: "panels" (series) or "database" (a few days, e.g. one page's positions).
    """
    base = journal.portfolio.base_currency
    ids = journal.instrument_ids
    instruments = list(Instrument.objects.filter(pk__in=ids))
    pairs = fx_instruments({t.currency for t in journal.trades}, base)
    everything = instruments + [instrument for instrument, _ in pairs.values()]
    begin = start
    read = panel_closes if source == "panels" else database_closes
    closes = read(everything, begin, end) if everything else pd.DataFrame(index=pd.DatetimeIndex([]))
    keys = {instrument.pk: instrument.key for instrument in everything}
    # Seed each series with its last close before the window: a position is marked at its last price.
    seeds = latest_closes(list(keys), begin - dt.timedelta(days=1))
    if seeds:
        seed = pd.DataFrame([(pd.Timestamp(date), keys[pk], close) for pk, (date, close) in seeds.items()],
                            columns=["date", "key", "close"]).pivot_table(index="date", columns="key", values="close")
        # Seeds are dated before the window, so stacking them above it keeps one row per date
        # (DataFrame.combine_first does the same column by column: 0.2 s for 200 instruments).
        closes = pd.concat([seed, closes]) if len(closes.columns) else seed
    closes = closes.sort_index()
    fx = pd.DataFrame(index=closes.index)
    for currency, (instrument, invert) in pairs.items():
        if instrument.key in closes.columns:
            quote = closes[instrument.key]
            fx[currency] = 1.0 / quote if invert else quote
    closes = closes.drop(columns=[i.key for i, _ in pairs.values() if i.key in closes.columns])
    splits = pd.DataFrame(
        [(f"{exchange}:{symbol}", ex_date, ratio) for exchange, symbol, ex_date, ratio in
         CorporateAction.objects.filter(instrument_id__in=ids, kind=CorporateAction.Kind.SPLIT, ratio__isnull=False)
         .values_list("instrument__exchange", "instrument__symbol", "ex_date", "ratio")],
        columns=["key", "ex_date", "ratio"])
    return closes, splits, fx


def splits_of(instrument_ids):
    """{key: [(ex_date, ratio), ...]} of the instruments' splits, oldest first (one query)."""
    out = {}
    for exchange, symbol, ex_date, ratio in (
            CorporateAction.objects.filter(instrument_id__in=list(instrument_ids), kind=CorporateAction.Kind.SPLIT,
                                           ratio__isnull=False)
            .order_by("ex_date").values_list("instrument__exchange", "instrument__symbol", "ex_date", "ratio")):
        out.setdefault(f"{exchange}:{symbol}", []).append((ex_date, ratio))
    return out


def database_fx(currencies, base, start, end):
    """Base units per unit of each currency by date over [start, end] (and the last rate before), from
    the database: the `fx` argument of quant.portfolio.fx_rates."""
    pairs = fx_instruments(currencies, base)
    if not pairs:
        return pd.DataFrame(index=pd.DatetimeIndex([]))
    instruments = [instrument for instrument, _ in pairs.values()]
    closes = database_closes(instruments, start - dt.timedelta(days=book.FX_MAX_AGE_DAYS), end)
    fx = pd.DataFrame(index=closes.index)
    for currency, (instrument, invert) in pairs.items():
        if instrument.key in closes.columns:
            fx[currency] = 1.0 / closes[instrument.key] if invert else closes[instrument.key]
    return fx


# --- dates and marks ------------------------------------------------------------------------------

def valuation_days(portfolio, start, end):
    """The sessions of the portfolio's calendar in [start, end], as a DatetimeIndex (midnight)."""
    if end < start:
        return pd.DatetimeIndex([])
    return pd.DatetimeIndex(pd.to_datetime(calendars.sessions_between(portfolio.calendar, start, end)))


def last_market_day(portfolio, instrument_ids, today=None):
    """The last day a book can be marked: the newest bar of its instruments or of its calendar's markets.

    Never after `today` (default: today) and never before the inception date. Snapshots stop where the
    data stops instead of carrying stale prices forward to today.
    """
    today = today or timezone.localdate()
    candidates = []
    if instrument_ids:
        last = PriceBar.objects.filter(instrument=OuterRef("pk")).order_by("-date").values("date")[:1]
        newest = (Instrument.objects.filter(pk__in=list(instrument_ids)).annotate(last=Subquery(last))
                  .aggregate(newest=Max("last"))["newest"])
        if newest:
            candidates.append(newest)
    venues = {venue for venue, name in CALENDAR_OF.items() if name == portfolio.calendar}
    candidates += [row["last_date"] for row in freshness.by_exchange() if row["exchange"] in venues]
    end = min(max(candidates, default=portfolio.inception_date), today)
    return max(end, portfolio.inception_date)


@dataclass
class Lag:
    """How the stored snapshots compare with the prices: the last stored day (None: none yet), the last
    day with market data, and the first session to compute to catch up (None: up to date)."""

    stored_until: dt.date | None
    prices_until: dt.date
    first_missing: dt.date | None


def snapshot_lag(portfolio):
    """The book's Lag: bars loaded outside the daily chain (a file, a backfill) leave the stored
    snapshots behind the prices until something marks it. Three small queries (and the cached freshness)."""
    ids = Trade.objects.live().filter(portfolio=portfolio).values_list("instrument_id", flat=True).distinct()
    prices_until = last_market_day(portfolio, list(ids))
    stored_until = PortfolioSnapshot.objects.filter(portfolio=portfolio).aggregate(last=Max("date"))["last"]
    start = stored_until + dt.timedelta(days=1) if stored_until else portfolio.inception_date
    missing = valuation_days(portfolio, start, prices_until)
    return Lag(stored_until=stored_until, prices_until=prices_until,
               first_missing=missing[0].date() if len(missing) else None)


SNAPSHOT_COLUMNS = ["value", "cash", "invested", "flows", "reason", "daily_return", "cumulative_return",
                    "volatility", "sharpe"]


@dataclass
class Prior:
    """What a computation starting mid-history continues from: the stored snapshots before its start."""

    value: float  # the last valued day's value plus the flows of unvalued days after it
    returns: list  # the last daily returns (oldest first)
    cumulative: float
    last_day: dt.date  # the last snapshot day before the start


# Up to this many sessions a computation reads its closes from the database: a daily step touches a few
# thousand rows, where the panels' freshness check alone is a pass over the exchange's bars.
DATABASE_WINDOW = 40


def compute_snapshots(journal, *, start, end, prior=None, source=None):
    """The book's daily snapshots over the calendar's sessions in [start, end], as a DataFrame.

    Columns SNAPSHOT_COLUMNS (floats; reason "" when valued), indexed by date. Without `prior` the
    computation starts at the inception date from the starting cash; with it, it continues the stored
    history (see Prior). Also returns the holdings on the last day (quant.portfolio.mark_to_market).
    source: "panels" or "database" for the closes; by default the database for up to DATABASE_WINDOW
    sessions, the Parquet panels beyond (the two give the same frame: tests/trades/test_valuation.py).
    """
    portfolio = journal.portfolio
    days = valuation_days(portfolio, start, end)
    if not len(days):
        return pd.DataFrame(columns=SNAPSHOT_COLUMNS, index=pd.DatetimeIndex([])), pd.DataFrame()
    source = source or ("database" if len(days) <= DATABASE_WINDOW else "panels")
    closes, splits, fx = market_data(journal, days[0].date(), days[-1].date(), source=source)
    flows_from = prior.last_day + dt.timedelta(days=1) if prior else None
    daily, holdings = book.mark_to_market(
        dates=days, legs=legs_frame(journal), closes=closes, splits=splits, fx=fx,
        movements=movements_frame(journal, flows_from), starting_cash=float(portfolio.starting_cash),
        base=portfolio.base_currency)
    initial = prior.value if prior else float(portfolio.starting_cash)
    returns = book.time_weighted_returns(daily["value"], daily["flows"], initial)
    stats = book.snapshot_metrics(returns, prior_returns=prior.returns if prior else None,
                                  prior_cumulative=prior.cumulative if prior else 0.0)
    out = daily.assign(daily_return=returns, cumulative_return=stats["cumulative_return"],
                       volatility=stats["volatility"], sharpe=stats["sharpe"])
    # An unvalued day has no cumulative return either; the next valued day's continues the chain.
    out.loc[~np.isfinite(out["value"].to_numpy()), "cumulative_return"] = np.nan
    return out[SNAPSHOT_COLUMNS], holdings


def fx_rate(currency, base, day):
    """(rate, None) turning `currency` into `base` on `day`, or (None, reason) when there is no rate.

    The rule of quant.portfolio.fx_rates: the pair's close on `day` or the last one before it, at most
    FX_MAX_AGE_DAYS old; a BASECCY pair is inverted.
    """
    if currency == base:
        return Decimal(1), None
    pair = fx_instruments({currency}, base).get(currency)
    if pair is None:
        return None, (f"no {currency}/{base} rate: no {currency}{base} or {base}{currency} FX series "
                      f"(ingest one, e.g. --exchange FX --symbols {base}{currency})")
    instrument, invert = pair
    found = latest_closes([instrument.pk], day).get(instrument.pk)
    if found is None or (day - found[0]).days > book.FX_MAX_AGE_DAYS:
        return None, (f"no {currency}/{base} rate on {day} or in the {book.FX_MAX_AGE_DAYS} days before "
                      f"({instrument.symbol})")
    rate = Decimal(repr(found[1]))
    return (Decimal(1) / rate if invert else rate), None
