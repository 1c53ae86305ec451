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
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import metrics

WHOLE_SHARE_TOLERANCE = 1e-4
FLAT = 1e300  # long_flat_returns: a flat bar's A = B, so large that subtracting a cost leaves it exact
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
    """What a backtest produced; every series and frame is indexed by the price dates.

    equity: end-of-bar equity (cash + shares x last valid close); returns: its simple daily returns (the
    first bar's measured from the capital); cash; holdings: shares (dates x names); weights: position
    value / equity; trades: one row per order; round_trips: closed positions with their P&L; log: orders
    not placed and why; traded_value: gross notional traded per bar. The frames are built on first use
    (a sweep only needs the returns).
    """

    equity: pd.Series
    returns: pd.Series
    cash: pd.Series
    traded_value: pd.Series
    config: Config
    names: pd.Index = field(repr=False, default=None)
    orders: dict = field(repr=False, default=None)
    entries: list = field(repr=False, default=None)
    snapshots: np.ndarray = field(repr=False, default=None)  # shares after each event (row 0: the start)
    which: np.ndarray = field(repr=False, default=None)  # per bar, the snapshot in force
    marks: np.ndarray = field(repr=False, default=None)  # last valid closes, 0 before the first

    @functools.cached_property
    def shares(self):
        return self.snapshots[self.which]

    @functools.cached_property
    def values(self):
        return self.shares * self.marks

    @functools.cached_property
    def trades(self):
        return _trades_frame(self.orders, self.equity.index, self.names)

    @functools.cached_property
    def round_trips(self):
        return _round_trips(self.orders, self.equity.index, self.names)

    @functools.cached_property
    def log(self):
        return pd.DataFrame(self.entries, columns=LOG_COLUMNS)

    @property
    def holdings(self):
        return pd.DataFrame(self.shares, index=self.equity.index, columns=self.names, copy=False)

    @property
    def weights(self):
        equity = self.equity.to_numpy()[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = np.where(equity != 0, self.values / equity, 0.0)
        return pd.DataFrame(weights, index=self.equity.index, columns=self.names, copy=False)

    @property
    def gross_exposure(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            gross = np.abs(self.values).sum(axis=1) / self.equity.to_numpy()
        return pd.Series(np.where(np.isfinite(gross), gross, 0.0), index=self.equity.index, name="gross_exposure")

    @property
    def net_exposure(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            net = self.values.sum(axis=1) / self.equity.to_numpy()
        return pd.Series(np.where(np.isfinite(net), net, 0.0), index=self.equity.index, name="net_exposure")

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
    decided_at, wanted = _checked(targets, close, open_, config)
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

    exec_at = decided_at + config.delay
    late = exec_at >= n_bars
    log = [(dates[d], None, "*", f"executes after the last bar {dates[-1]:%Y-%m-%d}") for d in decided_at[late]]
    decided_at, exec_at, wanted = decided_at[~late], exec_at[~late], wanted[~late]

    # Everything that does not depend on the path, for all events at once (events x names).
    price = px_fill[exec_at]
    priced = np.isfinite(price)
    fallback = mark_before[exec_at] if config.fill == "open" else mark[exec_at]
    # A name without a fill price is marked (and, if it must go, closed) at its last valid close.
    value_at = np.where(priced, price, fallback)
    value_at = np.where(np.isfinite(value_at), value_at, 0.0)
    decide = np.isfinite(wanted)
    tradable = decide & priced
    exit_unpriced = decide & ~priced & (wanted == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_equity = np.where(tradable, wanted / np.where(priced, price, 1.0), 0.0)  # shares per unit of equity

    costs = config.costs
    commission_rate, slippage_rate = costs.commission_bps / 1e4, costs.slippage_bps / 1e4
    minimum = costs.commission_min
    n_events = len(exec_at)
    snapshots = np.zeros((n_events + 1, n_names))  # row 0: the start, no shares; row k + 1: after event k
    cash_after = np.empty(n_events + 1)
    cash_after[0] = config.capital
    raw_targets = np.zeros((n_events, n_names)) if not config.fractional else None
    shares, cash = snapshots[0], config.capital
    for k in range(n_events):
        # The path-dependent part: size on this event's equity, pay the costs, move cash.
        values = value_at[k]
        equity = cash + float(shares @ values)
        desired = np.where(tradable[k], per_equity[k] * equity, shares)
        if raw_targets is not None:
            raw_targets[k] = desired
            desired = np.where(tradable[k], np.sign(desired) * np.floor(np.abs(desired) + WHOLE_SHARE_TOLERANCE), desired)
        desired = np.where(exit_unpriced[k], 0.0, desired)
        order = desired - shares
        notional = np.abs(order) * values
        traded = np.abs(order) > 1e-12
        if traded.any():
            cost = np.maximum(minimum, commission_rate * notional) + slippage_rate * notional
            cash -= float(order @ values) + float(cost[traded].sum())
        snapshots[k + 1] = shares = desired
        cash_after[k + 1] = cash

    orders = np.diff(snapshots, axis=0)
    event, column = np.nonzero(np.abs(orders) > 1e-12)
    log += _event_log(dates, names, decided_at, exec_at, decide, priced, exit_unpriced, wanted, snapshots,
                      value_at, raw_targets, tradable)
    trades = _trades(event, column, orders, snapshots, value_at, exec_at, decided_at, costs)
    traded_value = np.zeros(n_bars)
    np.add.at(traded_value, exec_at[event], trades["notional"])

    # Holdings in force at the end of each bar: the snapshot of the latest event executed on or before it.
    # Equity per bar is cash + shares . marks, one matrix-vector product per stretch between events: the
    # bars x names holdings are only built if someone asks for them.
    which = np.searchsorted(exec_at, np.arange(n_bars), side="right")
    marks = np.where(np.isnan(mark), 0.0, mark)
    cash_series = cash_after[which]
    equity_series = np.empty(n_bars)
    bounds = np.concatenate([[0], exec_at, [n_bars]])
    for k in range(n_events + 1):
        if bounds[k + 1] > bounds[k]:
            rows = slice(bounds[k], bounds[k + 1])
            equity_series[rows] = cash_after[k] + marks[rows] @ snapshots[k]
    previous = np.concatenate([[config.capital], equity_series[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        daily = np.where(previous != 0, equity_series / previous - 1.0, np.nan)

    return Result(
        equity=pd.Series(equity_series, index=dates, name="equity"),
        returns=pd.Series(daily, index=dates, name="returns"),
        cash=pd.Series(cash_series, index=dates, name="cash"),
        traded_value=pd.Series(traded_value, index=dates, name="traded_value"),
        config=config, names=names, orders=trades, entries=log, snapshots=snapshots, which=which, marks=marks,
    )


def _trades(event, column, orders, snapshots, value_at, exec_at, decided_at, costs):
    """Every order as arrays (event order, then column): bars, shares before and after, prices, costs, flows."""
    qty = orders[event, column]
    px = value_at[event, column]
    notional = np.abs(qty) * px
    commission = np.maximum(costs.commission_min, costs.commission_bps / 1e4 * notional)
    slippage = costs.slippage_bps / 1e4 * notional
    return {
        "bar": exec_at[event], "decided": decided_at[event], "column": column, "shares": qty, "price": px,
        "fill_price": px * (1 + np.sign(qty) * costs.slippage_bps / 1e4), "notional": notional,
        "commission": commission, "slippage": slippage, "flow": -qty * px - commission - slippage,
        "before": snapshots[event, column], "after": snapshots[event + 1, column],
    }


def _event_log(dates, names, decided_at, exec_at, decide, priced, exit_unpriced, wanted, snapshots, value_at,
               raw_targets, tradable):
    """Orders not placed, and unpriced exits, with their reasons, in event order."""
    held = snapshots[:-1]
    entries = []
    if raw_targets is not None:
        for k, i in zip(*np.nonzero(tradable & (raw_targets != 0) & (np.abs(raw_targets) + WHOLE_SHARE_TOLERANCE < 1))):
            entries.append((k, i, f"below one share: target {raw_targets[k, i]:.4f} shares"))
    stuck = decide & ~priced & ~(exit_unpriced & (held != 0)) & ((wanted != 0) | (held != 0))
    for k, i in zip(*np.nonzero(stuck)):
        entries.append((k, i, f"no price on {dates[exec_at[k]]:%Y-%m-%d}: not traded"))
    for k, i in zip(*np.nonzero(exit_unpriced & (held != 0))):
        entries.append((k, i, f"no price on {dates[exec_at[k]]:%Y-%m-%d}: closed at the last valid close "
                              f"{value_at[k, i]:.6g}"))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [(dates[decided_at[k]], dates[exec_at[k]], names[i], reason) for k, i, reason in entries]


def _ffill(values):
    """Each column's last valid value at or before each row (NaN before the first), in numpy.

    Only the columns with a gap after their first value need filling (a late listing's leading NaNs
    are already what a forward fill gives), so those alone are filled: on a 504-name panel that is a
    handful of columns instead of a pass over every cell.
    """
    missing = np.isnan(values)
    count = missing.sum(axis=0)
    leading = np.where(count < len(values), np.argmin(missing, axis=0), len(values))
    gaps = np.flatnonzero(count > leading)
    if not len(gaps):
        return values
    filled = values.copy()
    part = values[:, gaps]
    rows = np.where(np.isnan(part), 0, np.arange(len(values))[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled[:, gaps] = np.take_along_axis(part, rows, axis=0)
    return filled


def _round_trips(trades, dates, names):
    """Closed positions from flat to flat, per name, with the sum of their cash flows (costs included).

    A flip (long to short or back) closes the old position with the share of the order's flows of its
    size and opens the new one with the rest. Computed from the orders after the fact, all names at once.
    """
    order = np.argsort(trades["column"], kind="stable")  # per name, in event order
    before, after = trades["before"][order], trades["after"][order]
    flows, bars, column = trades["flow"][order], trades["bar"][order], trades["column"][order]
    closing = (before != 0) & ((after == 0) | (np.sign(after) != np.sign(before)))
    opening = (after != 0) & ((before == 0) | closing)
    size = np.abs(after - before)
    closing_share = np.where(closing, np.minimum(np.abs(before) / np.where(size > 0, size, 1.0), 1.0), 0.0)
    close_flow = flows * closing_share
    # Episode ids: the position after each order, and the one it traded out of (ids never span two names,
    # because a name's first order opens a new one).
    episode_after = np.cumsum(opening)
    episode_before = episode_after - opening
    pnl = np.zeros(episode_after[-1] + 1 if len(episode_after) else 1)
    np.add.at(pnl, episode_before, close_flow)
    np.add.at(pnl, np.where(opening, episode_after, episode_before), flows - close_flow)
    opened_bar = np.zeros(len(pnl), dtype=np.int64)
    opened_bar[episode_after[opening]] = bars[opening]
    closed = episode_before[closing]
    return pd.DataFrame({
        "name": _names(column[closing], names), "opened": dates[opened_bar[closed]], "closed": dates[bars[closing]],
        "side": np.where(before[closing] > 0, "long", "short"), "pnl": pnl[closed],
    })


def _names(columns, names):
    """Instrument names of column positions as a categorical (no Python string per row)."""
    return pd.Categorical.from_codes(columns, categories=pd.Index(names))


def _trades_frame(trades, dates, names):
    return pd.DataFrame({
        "date": dates[trades["bar"]], "decided": dates[trades["decided"]], "name": _names(trades["column"], names),
        **{key: trades[key] for key in ("shares", "price", "fill_price", "notional", "commission", "slippage")},
        "cost": trades["commission"] + trades["slippage"],
    })


def _checked(targets, close, open_, config):
    """(decision bar positions, targets as a decisions x close-columns float array); BacktestError naming the problem."""
    if not isinstance(close, pd.DataFrame) or not isinstance(close.index, pd.DatetimeIndex):
        raise BacktestError("close must be a DataFrame indexed by date")
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise BacktestError("close's dates must be sorted and unique")
    if config.fill == "open" and open_ is None:
        raise BacktestError("fill='open' needs the opens (open_)")
    if not isinstance(targets, pd.DataFrame):
        targets = pd.DataFrame(targets)
    columns = close.columns.get_indexer(targets.columns)
    if (columns < 0).any():
        unknown = targets.columns[columns < 0]
        raise BacktestError(f"targets name instruments without prices: {', '.join(map(str, unknown[:5]))}")
    rows = close.index.get_indexer(targets.index)
    if (rows < 0).any():
        raise BacktestError(f"target date {targets.index[rows < 0][0]:%Y-%m-%d} is not a price date")
    values = targets.to_numpy(dtype="float64")
    if (np.diff(rows) <= 0).any():
        order = np.argsort(rows, kind="stable")
        rows, values = rows[order], values[order]
        if (np.diff(rows) == 0).any():
            raise BacktestError("targets have two rows for one date")
    if np.isinf(values).any():
        raise BacktestError("a target weight is infinite")
    wanted = np.full((len(rows), close.shape[1]), np.nan)
    wanted[:, columns] = values
    return rows, wanted


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
    # Column-major: every pass below runs down one book's bars in contiguous memory.
    pos = np.asfortranarray(positions, dtype=bool)
    close = np.asarray(close, dtype="float64")
    fill = close if fill_prices is None else np.asarray(fill_prices, dtype="float64")
    c = cost_rate
    n_bars = len(pos)
    # State of each book on each bar: 2 x held now + held the bar before (0 flat, 1 left, 2 entered, 3 held).
    state = pos.view(np.int8) * np.int8(2)
    state[1:] += pos[:-1].view(np.int8)
    # The bar each open position was entered on (a running maximum of entry bars) and c x its entry price.
    entered = np.where(state == 2, np.arange(n_bars, dtype=np.int32)[:, None], np.int32(0))
    np.maximum.accumulate(entered, axis=0, out=entered)
    cost_at_entry = fill[entered]
    cost_at_entry *= c
    # Every state's growth as (A - c p_e) / (B - c p_e), A and B per bar from a small table:
    # held (close_t - c p_e) / (close_t-1 - c p_e); left at p_t (p_t (1 - c) - c p_e) / (close_t-1 - c p_e);
    # entered at p_t (p_e = p_t): (close_t - c p_t) / p_t; flat: FLAT / FLAT = 1 (c p_e vanishes beside FLAT).
    previous = np.concatenate([[np.nan], close[:-1]])
    flat = np.full(n_bars, FLAT)
    top = np.column_stack([flat, fill * (1.0 - c), close, close])
    bottom = np.column_stack([flat, previous, fill * (1.0 + c), previous])
    bars = np.arange(n_bars)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = top[bars, state] - cost_at_entry
        out /= bottom[bars, state] - cost_at_entry
    out -= 1.0
    return out
