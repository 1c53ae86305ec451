"""The backtest engine: target weights in, trades, holdings and daily equity out, costs always on.

Conventions (docs/backtests.md says the same with examples):
- A strategy emits target weights (fractions of equity, negative = short) on the bars where it decides,
  from data up to and including that bar's close. A decision on bar t is executed on bar t + `delay`
  (1: the next bar) at that bar's open or close (`fill`). A decision never earns the return of its own bar.
- A target row may leave a name NaN: that name is not traded (its shares drift with the price). Names
  absent from the targets are never traded. Between decisions nothing is re-weighted: holdings drift.
- Every order pays commission max(commission_min, commission_bps x notional) and slippage
  slippage_bps x notional, once each, out of cash. Orders are sized on the equity at the execution
  price before costs, so a 100% target leaves cash at minus the costs (a sliver of margin).
- Shares are fractional, or whole (rounded toward zero, with 1e-4 tolerance: 3.9999 is 4); a non-zero
  target that rounds to no share places no order and is logged "below one share" (PITFALLS BR-21).
- Prices are marked at the last valid close. A name without a price on the execution bar is not
  traded (logged); if its target is 0 it is closed at its last valid close (a delisted name's exit).
- A closed round trip runs from a flat position to the next flat position (a flip through zero closes
  one and opens another); its P&L is its cash flows, costs included: the per-trade statistics use it.

The loop runs over decision events, never over bars: each event is a few vector operations across
names, and the daily holdings and equity are built from the events with array indexing.
"""
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import metrics

WHOLE_SHARE_TOLERANCE = 1e-4
FILLS = ("open", "close")


class BacktestError(ValueError):
    """The inputs cannot be backtested: misaligned frames, an unknown fill, a bad cost."""


@dataclass(frozen=True)
class Costs:
    """Costs of every order: commission max(minimum, bps x notional) plus slippage bps x notional."""

    commission_bps: float = 5.0
    commission_min: float = 1.0
    slippage_bps: float = 5.0

    def __post_init__(self):
        for name in ("commission_bps", "commission_min", "slippage_bps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise BacktestError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class Config:
    """How orders are executed: capital, fill price, execution delay in bars, share rounding and costs."""

    capital: float = 100_000.0
    fill: str = "close"
    delay: int = 1
    fractional: bool = True
    costs: Costs = field(default_factory=Costs)
    periods_per_year: int = metrics.TRADING_DAYS

    def __post_init__(self):
        if self.fill not in FILLS:
            raise BacktestError(f"fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if not (isinstance(self.delay, int) and self.delay >= 1):
            raise BacktestError(f"delay must be a whole number of bars >= 1, got {self.delay!r}")
        if not (math.isfinite(self.capital) and self.capital > 0):
            raise BacktestError(f"capital must be > 0, got {self.capital!r}")


@dataclass
class Result:
    """What a backtest produced; every frame is indexed by the price dates.

    equity: end-of-bar equity (cash + shares x last valid close); returns: its simple daily returns (the
    first bar's measured from the capital); cash; holdings: shares (dates x names); weights: position
    value / equity; trades: one row per order; round_trips: closed positions with their P&L; log: orders
    not placed and why; traded_value: gross notional traded per bar.
    """

    equity: pd.Series
    returns: pd.Series
    cash: pd.Series
    holdings: pd.DataFrame
    weights: pd.DataFrame
    trades: pd.DataFrame
    round_trips: pd.DataFrame
    log: pd.DataFrame
    traded_value: pd.Series
    config: Config

    @property
    def gross_exposure(self):
        return self.weights.abs().sum(axis=1)

    @property
    def net_exposure(self):
        return self.weights.sum(axis=1)

    def turnover(self):
        """Annualised one-way turnover (metrics.turnover) on the equity at the end of the bar before."""
        base = self.equity.shift(1).fillna(self.config.capital)
        return metrics.turnover(self.traded_value, base, self.config.periods_per_year)

    def exposure(self):
        """Share of bars with any position (metrics.exposure)."""
        return metrics.exposure(self.gross_exposure)

    def summary(self, *, risk_free=0.0):
        """metrics.summarize of the daily returns with the per-trade P&L, plus turnover, exposure, costs.

        The starting equity is dated the first bar (nothing can be held before a decision executes).
        """
        out = metrics.summarize(self.returns.iloc[1:], start=self.returns.index[0], risk_free=risk_free,
                                periods_per_year=self.config.periods_per_year,
                                trade_pnls=self.round_trips["pnl"].to_numpy())
        extra = {
            "turnover": self.turnover(),
            "exposure": self.exposure(),
            "avg_gross_exposure": float(self.gross_exposure.mean()) if len(self.equity) else math.nan,
            "avg_net_exposure": float(self.net_exposure.mean()) if len(self.equity) else math.nan,
            "final_equity": float(self.equity.iloc[-1]) if len(self.equity) else math.nan,
            "costs": float(self.trades["cost"].sum()),
            "orders": float(len(self.trades)),
            "round_trips": float(len(self.round_trips)),
        }
        for name, value in extra.items():
            if math.isfinite(value):
                out["values"][name] = value
            else:
                out["values"][name] = None
                out["undefined"][name] = metrics.REASONS["no_returns"] if not len(self.equity) else metrics.REASONS["no_trades"]
        return out


TRADE_COLUMNS = ["date", "decided", "name", "shares", "price", "fill_price", "notional", "commission",
                 "slippage", "cost"]
TRIP_COLUMNS = ["name", "opened", "closed", "side", "pnl"]
LOG_COLUMNS = ["decided", "date", "name", "reason"]


def run(targets: pd.DataFrame, close: pd.DataFrame, *, open_: pd.DataFrame | None = None,
        config: Config | None = None) -> Result:
    """Backtest target weights against prices.

    close: dates x names of (adjusted) closes, float, NaN = no price; sorted unique DatetimeIndex.
    open_: the same shape of opens, needed when config.fill == "open".
    targets: rows indexed by decision dates (each one of close's dates), columns among close's names;
    a value is the target weight of that name in the equity after execution, NaN = leave as is.
    Decisions whose execution bar falls after the last date are dropped (logged).
    Raises BacktestError naming the problem.
    """
    config = config or Config()
    close, targets = _checked(targets, close, open_, config)
    dates, names = close.index, close.columns
    n_bars, n_names = close.shape
    px_close = close.to_numpy(dtype="float64", copy=True)
    px_close[~(px_close > 0)] = np.nan  # zero and negative prices are missing (BR-07)
    mark = _ffill(px_close)
    if config.fill == "open":
        px_fill = open_.reindex(index=dates, columns=names).to_numpy(dtype="float64", copy=True)
        px_fill[~(px_fill > 0)] = np.nan
        mark_before = np.vstack([np.full((1, n_names), np.nan), mark[:-1]])
    else:
        px_fill, mark_before = px_close, mark

    decided_at = dates.get_indexer(targets.index)
    exec_at = decided_at + config.delay
    late = exec_at >= n_bars
    log = [(dates[d], None, "*", f"executes after the last bar {dates[-1]:%Y-%m-%d}") for d in decided_at[late]]
    decided_at, exec_at = decided_at[~late], exec_at[~late]
    wanted = targets.reindex(columns=names).to_numpy(dtype="float64")[~late]

    costs = config.costs
    commission_rate, slippage_rate = costs.commission_bps / 1e4, costs.slippage_bps / 1e4
    shares = np.zeros(n_names)
    cash = config.capital
    snapshots = np.zeros((len(exec_at), n_names))
    cash_after = np.zeros(len(exec_at))
    traded_value = np.zeros(n_bars)
    trade_parts, trip_parts = [], []
    # Round-trip bookkeeping per name: cash flows of the open position and the bar it opened on.
    open_flows = np.zeros(n_names)
    opened_at = np.full(n_names, -1)
    all_names = np.asarray(names, dtype=object)

    for k, (d, e, w) in enumerate(zip(decided_at, exec_at, wanted)):
        price = px_fill[e]
        priced = np.isfinite(price)
        # A name without a fill price is marked (and, if it must go, closed) at its last valid close.
        value_at = np.where(priced, price, mark_before[e] if config.fill == "open" else mark[e])
        value_at = np.where(np.isfinite(value_at), value_at, 0.0)
        equity = cash + float(shares @ value_at)
        decide = np.isfinite(w)
        desired = shares.copy()
        tradable = decide & priced
        with np.errstate(divide="ignore", invalid="ignore"):
            desired[tradable] = w[tradable] * equity / price[tradable]
        if not config.fractional:
            raw = desired[tradable]
            rounded = np.sign(raw) * np.floor(np.abs(raw) + WHOLE_SHARE_TOLERANCE)
            small = (raw != 0) & (rounded == 0)
            for i in np.flatnonzero(tradable)[small]:
                log.append((dates[d], dates[e], names[i], f"below one share: target {desired[i]:.4f} shares"))
            desired[tradable] = rounded
        gone = decide & ~priced & (w == 0) & (shares != 0)
        desired[gone] = 0.0
        for i in np.flatnonzero(decide & ~priced & ~gone & ((w != 0) | (shares != 0))):
            log.append((dates[d], dates[e], names[i], f"no price on {dates[e]:%Y-%m-%d}: not traded"))
        for i in np.flatnonzero(gone):
            log.append((dates[d], dates[e], names[i],
                        f"no price on {dates[e]:%Y-%m-%d}: closed at the last valid close {value_at[i]:.6g}"))

        order = desired - shares
        hit = np.abs(order) > 1e-12
        if hit.any():
            px = value_at[hit]
            qty = order[hit]
            notional = np.abs(qty) * px
            commission = np.maximum(costs.commission_min, commission_rate * notional)
            slippage = slippage_rate * notional
            flows = -qty * px - commission - slippage
            cash += float(flows.sum())
            traded_value[e] += float(notional.sum())
            trade_parts.append((np.full(len(qty), e), np.full(len(qty), d), np.flatnonzero(hit), qty, px,
                                px * (1 + np.sign(qty) * slippage_rate), notional, commission, slippage))
            trip_parts.append(_round_trips(np.flatnonzero(hit), shares[hit], desired[hit], flows, e,
                                           open_flows, opened_at))
        shares = desired
        snapshots[k] = shares
        cash_after[k] = cash

    # Holdings in force at the end of each bar: the snapshot of the latest event executed on or before it.
    which = np.searchsorted(exec_at, np.arange(n_bars), side="right") - 1
    # Row 0 is the start (no shares, all cash); event k's snapshot is row k + 1.
    snapshots = np.vstack([np.zeros((1, n_names)), snapshots])
    cash_after = np.concatenate([[config.capital], cash_after])
    holdings = snapshots[which + 1]
    cash_series = cash_after[which + 1]
    values = holdings * np.where(np.isnan(mark), 0.0, mark)
    equity_series = cash_series + values.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(equity_series[:, None] != 0, values / equity_series[:, None], 0.0)
    previous = np.concatenate([[config.capital], equity_series[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        daily = np.where(previous != 0, equity_series / previous - 1.0, np.nan)

    return Result(
        equity=pd.Series(equity_series, index=dates, name="equity"),
        returns=pd.Series(daily, index=dates, name="returns"),
        cash=pd.Series(cash_series, index=dates, name="cash"),
        holdings=pd.DataFrame(holdings, index=dates, columns=names, copy=False),
        weights=pd.DataFrame(weights, index=dates, columns=names, copy=False),
        trades=_trades_frame(trade_parts, dates, all_names),
        round_trips=_trips_frame(trip_parts, dates, all_names),
        log=pd.DataFrame(log, columns=LOG_COLUMNS),
        traded_value=pd.Series(traded_value, index=dates, name="traded_value"),
        config=config,
    )


def _ffill(values):
    """Each column's last valid value at or before each row (NaN before the first), in numpy."""
    rows = np.where(np.isnan(values), 0, np.arange(len(values))[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled = np.take_along_axis(values, rows, axis=0)
    return filled


def _round_trips(idx, before, after, flows, bar, open_flows, opened_at):
    """Book one event's cash flows into open positions; return the round trips it closed.

    A flip (long to short or back) closes the old position with the share of the flows of its size
    and opens the new one with the rest.
    """
    total = np.abs(after - before)
    closing = (before != 0) & ((after == 0) | (np.sign(after) != np.sign(before)))
    share_closing = np.where(closing, np.minimum(np.abs(before) / np.where(total > 0, total, 1.0), 1.0), 0.0)
    close_flow = flows * share_closing
    rest = flows - close_flow
    names = idx[closing]
    pnl = open_flows[names] + close_flow[closing]
    trips = (names, opened_at[names].copy(), np.full(len(names), bar), np.sign(before[closing]), pnl)
    open_flows[names] = 0.0
    opening = (after != 0) & ((before == 0) | closing)
    opened_at[idx[opening]] = bar
    open_flows[idx] += np.where(closing & ~opening, 0.0, rest)
    opened_at[idx[(after == 0)]] = -1
    return trips


def _trades_frame(parts, dates, names):
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[s]" if c in ("date", "decided") else
                                          (object if c == "name" else "float64")) for c in TRADE_COLUMNS})
    e, d, i, qty, px, fill, notional, commission, slippage = (np.concatenate(p) for p in zip(*parts))
    return pd.DataFrame({
        "date": dates[e], "decided": dates[d], "name": names[i], "shares": qty, "price": px, "fill_price": fill,
        "notional": notional, "commission": commission, "slippage": slippage, "cost": commission + slippage,
    })


def _trips_frame(parts, dates, names):
    if not parts or not sum(len(p[0]) for p in parts):
        return pd.DataFrame({"name": pd.Series(dtype=object), "opened": pd.Series(dtype="datetime64[s]"),
                             "closed": pd.Series(dtype="datetime64[s]"), "side": pd.Series(dtype="float64"),
                             "pnl": pd.Series(dtype="float64")})
    i, opened, closed, side, pnl = (np.concatenate(p) for p in zip(*parts))
    return pd.DataFrame({"name": names[i], "opened": dates[opened], "closed": dates[closed],
                         "side": np.where(side > 0, "long", "short"), "pnl": pnl})


def _checked(targets, close, open_, config):
    if not isinstance(close, pd.DataFrame) or not isinstance(close.index, pd.DatetimeIndex):
        raise BacktestError("close must be a DataFrame indexed by date")
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise BacktestError("close's dates must be sorted and unique")
    if config.fill == "open" and open_ is None:
        raise BacktestError("fill='open' needs the opens (open_)")
    targets = pd.DataFrame(targets)
    unknown = targets.columns.difference(close.columns)
    if len(unknown):
        raise BacktestError(f"targets name instruments without prices: {', '.join(map(str, unknown[:5]))}")
    missing = targets.index.difference(close.index)
    if len(missing):
        raise BacktestError(f"target date {missing[0]:%Y-%m-%d} is not a price date")
    targets = targets.sort_index()
    if targets.index.has_duplicates:
        raise BacktestError("targets have two rows for one date")
    bad = ~np.isfinite(targets.to_numpy(dtype="float64")) & targets.notna().to_numpy()
    if bad.any():
        raise BacktestError("a target weight is infinite")
    return close, targets


def long_flat_returns(positions: np.ndarray, close: np.ndarray, *, fill_prices: np.ndarray | None = None,
                      cost_rate: float) -> np.ndarray:
    """Daily returns of many long/flat books on one instrument at once (the vectorised sweep path).

    positions: bars x books of 0/1, the position in force at the end of each bar (already lagged: a
    decision on bar t is a 1 from bar t + delay on). close: the instrument's closes (bars, no NaN);
    fill_prices: the prices orders fill at (closes by default, or opens). cost_rate: commission bps +
    slippage bps as a fraction, charged on each order's notional out of cash, with no minimum.
    Returns bars x books of simple returns, the first bar's measured from the capital. Gives exactly
    `run`'s returns for the same positions with fractional shares and commission_min = 0: a round trip
    entered at p_e and left at p_x grows equity by (p_x / p_e)(1 - c) - c, and while it is open equity
    is E_entry x (close / p_e - c).
    """
    pos = np.asarray(positions, dtype=bool)
    close = np.asarray(close, dtype="float64")
    fill = close if fill_prices is None else np.asarray(fill_prices, dtype="float64")
    n_bars = pos.shape[0]
    previous = np.vstack([np.zeros((1, pos.shape[1]), dtype=bool), pos[:-1]])
    entry = pos & ~previous
    exit_ = ~pos & previous
    rows = np.arange(n_bars)[:, None]
    # The bar each open position was entered on: the running maximum of entry bars.
    entered = np.maximum.accumulate(np.where(entry, rows, -1), axis=0)
    entry_price = fill[np.maximum(entered, 0)]
    # Each exit multiplies equity by its round trip's growth; held bars scale the entry equity.
    before_exit = np.vstack([entry_price[:1], entry_price[:-1]])
    growth = np.where(exit_, (fill[:, None] / before_exit) * (1.0 - cost_rate) - cost_rate, 1.0)
    banked = np.cumprod(growth, axis=0)
    equity = np.where(pos, banked * (close[:, None] / entry_price - cost_rate), banked)
    start = np.ones((1, pos.shape[1]))
    return equity / np.vstack([start, equity[:-1]]) - 1.0
