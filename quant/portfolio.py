"""Portfolio arithmetic: sizing, FIFO lots, realised P&L, marks to market and time-weighted returns.

Conventions (docs/portfolio.md says the same with examples):
- Money that must reconcile (a trade's P&L, commission shares) is computed in Decimal here; the daily
  marks over many days are float64 arrays (analytics), rounded by the caller when stored.
- Quantities and prices of a leg are as executed. A split between two legs is undone with the split
  ratios: a position's "basis units" are shares / F(date), where F(date) is the product of the ratios of
  the instrument's splits with ex-date on or before `date`; its basis price is close x F(date). So a 4:1
  split is neither a 75% loss nor a quantity the journal cannot match.
- Dividends are not folded into prices: they reach the book as cash movements, as the broker pays them,
  so the cash reconciles with the statement and no dividend is counted twice.
- A foreign-currency amount is converted at its day's FX rate: the rate dated that day or the latest one
  before it, at most FX_MAX_AGE_DAYS calendar days old (FX trades five days a week; an older rate means
  the series is missing, and a missing rate is reported, never guessed).
- Daily returns are time-weighted: external flows (deposits, withdrawals) are available at the start of
  their day, r_t = V_t / (V_{t-1} + F_t) - 1, so a deposit is not a gain.
"""
import datetime as dt

import numpy as np
import pandas as pd

from . import metrics
from .lots import (  # noqa: F401  (re-exported: the journal's lot arithmetic lives in quant.lots)
    LONG,
    SHORT,
    WHOLE_SHARE_TOLERANCE,
    _decimal_ratio,
    _plain,
    first_affected_date,
    fifo_allocate,
    pro_rata,
    realised_pnl,
    realised_pnl_base,
    shares_for_target,
    split_ratio,
)

FX_MAX_AGE_DAYS = 5
ROLLING_WINDOW = 21


# --- marking to market ---------------------------------------------------------------------------

def _split_table(splits):
    """{key: (ex dates datetime64[D] sorted, cumulative ratio products with a leading 1.0)}."""
    if splits is None or not len(splits):
        return {}
    table = pd.DataFrame({"key": np.asarray(splits["key"]).astype(str),
                          "ex_date": np.asarray(splits["ex_date"], dtype="datetime64[D]"),
                          "ratio": np.asarray(splits["ratio"], dtype="float64")}).sort_values(["key", "ex_date"])
    return {key: (group["ex_date"].to_numpy(), np.concatenate([[1.0], np.cumprod(group["ratio"].to_numpy())]))
            for key, group in table.groupby("key", sort=False)}


def split_factors(keys, days, splits):
    """F(key, day) for aligned arrays of keys and days: the product of the key's split ratios with
    ex-date on or before `day` (1.0 where there is none). splits: DataFrame key, ex_date, ratio."""
    keys = np.asarray(keys).astype(str)
    days = np.asarray(days, dtype="datetime64[D]")
    out = np.ones(len(keys))
    for key, (ex_dates, cumulative) in _split_table(splits).items():
        rows = keys == key
        if rows.any():
            out[rows] = cumulative[np.searchsorted(ex_dates, days[rows], side="right")]
    return out


def split_factor_grid(keys, days, splits):
    """F for every (day, key): an (n days x n keys) array, computed only for keys that have splits."""
    days = np.asarray(days, dtype="datetime64[D]")
    out = np.ones((len(days), len(keys)))
    column = {key: j for j, key in enumerate(keys)}
    for key, (ex_dates, cumulative) in _split_table(splits).items():
        if key in column:
            out[:, column[key]] = cumulative[np.searchsorted(ex_dates, days, side="right")]
    return out


def _asof(frame, days, max_age_days=None):
    """frame's last valid value on or before each of `days`, per column: (values, dates of those values).

    frame: DataFrame indexed by a sorted DatetimeIndex. With max_age_days, a value older than that many
    calendar days is NaN.
    """
    days = pd.DatetimeIndex(days)
    if frame.shape[1] == 0 or not len(frame.index):
        return (np.full((len(days), frame.shape[1]), np.nan),
                np.full((len(days), frame.shape[1]), np.datetime64("NaT", "D")))
    index = frame.index.to_numpy(dtype="datetime64[D]")
    values = frame.to_numpy(dtype="float64")
    valid = np.isfinite(values)
    # Row of the last valid value at or before each row, per column (-1: none yet).
    rows = np.where(valid, np.arange(len(index))[:, None], -1)
    rows = np.maximum.accumulate(rows, axis=0) if len(index) else rows
    at = np.searchsorted(index, days.to_numpy(dtype="datetime64[D]"), side="right") - 1
    picked = np.full((len(days), values.shape[1]), -1)
    inside = at >= 0
    picked[inside] = rows[at[inside]]
    found = picked >= 0
    safe = np.where(found, picked, 0)
    out = np.where(found, values[safe, np.arange(values.shape[1])], np.nan)
    when = np.where(found, index[safe], np.datetime64("NaT", "D"))
    if max_age_days is not None:
        age = (days.to_numpy(dtype="datetime64[D]")[:, None] - when).astype("timedelta64[D]").astype("float64")
        out = np.where(found & (age <= max_age_days), out, np.nan)
    return out, when


def fx_rates(fx, currencies, days, base):
    """The rate turning each currency into `base` on each day: (n days x n currencies) float64.

    fx: DataFrame indexed by date, one column per currency, the number of base units per unit of that
    currency (the caller inverts a BASEXXX pair). The base currency is 1.0; a rate older than
    FX_MAX_AGE_DAYS, or none, is NaN.
    """
    currencies = list(currencies)
    out = np.full((len(days), len(currencies)), np.nan)
    for j, currency in enumerate(currencies):
        if currency == base:
            out[:, j] = 1.0
        elif fx is not None and currency in fx.columns:
            out[:, j] = _asof(fx[[currency]], days, FX_MAX_AGE_DAYS)[0][:, 0]
    return out


def mark_to_market(*, dates, legs, closes, splits, fx, movements, starting_cash, base):
    """Value a book at each date's close: cash + the market value of its open positions.

    dates: sorted DatetimeIndex of valuation days (midnight).
    legs: DataFrame, one row per trade leg: date (datetime64), key (instrument), currency, shares
      (signed position change as executed: + buys, - sells and shorts), cash (signed cash change in
      the trade's currency, commission included), label (names the leg in a reason).
    closes: DataFrame of raw closes indexed by date (may start before dates[0]), one column per key;
      NaN = no usable price (quarantined, missing). A position is marked at its key's last close on or
      before the day.
    splits: DataFrame key, ex_date, ratio (or None). fx: see fx_rates. movements: DataFrame date,
      amount (base currency, signed), external (bool: deposit/withdrawal).
    starting_cash: cash at the start of dates[0] (legs and movements dated before it included on top).

    Returns (daily, holdings). daily: DataFrame indexed by dates with float64 columns cash, invested
    (long value less short value), value, flows (external flows counted on the day: those dated after
    the previous valuation day up to this one), and str column reason ("" when valued). A day is
    unvalued (NaN value, a reason) when an open position has no price or no FX rate, or when a leg's
    cash could not be converted (that day and every later one). holdings: DataFrame, one row per key
    with a position on the last date: key, currency, shares (as held today, splits applied), price,
    price_date, rate, value (base).
    """
    dates = pd.DatetimeIndex(dates)
    n = len(dates)
    day_values = dates.to_numpy(dtype="datetime64[D]")
    keys = sorted(set(legs["key"]) | set(closes.columns)) if len(legs) else list(closes.columns)
    key_index = {key: j for j, key in enumerate(keys)}
    currency_of = dict(zip(legs["key"], legs["currency"])) if len(legs) else {}
    currencies = sorted(set(currency_of.values()) | {base})
    ccy_index = {c: j for j, c in enumerate(currencies)}

    # Each leg and movement counts from the first valuation day on or after its date; later ones not yet.
    leg_days = np.asarray(legs["date"], dtype="datetime64[D]") if len(legs) else np.array([], dtype="datetime64[D]")
    leg_at = np.searchsorted(day_values, leg_days, side="left")
    leg_in = leg_at < n

    # Cash: each leg converted at its own day's rate.
    leg_ccy = np.array([ccy_index[c] for c in legs["currency"]], dtype=np.int64) if len(legs) else np.array([], dtype=np.int64)
    leg_rate = np.ones(len(legs))
    if len(legs):
        rates_at_legs = fx_rates(fx, currencies, pd.DatetimeIndex(leg_days), base)
        leg_rate = rates_at_legs[np.arange(len(legs)), leg_ccy]
    leg_cash = legs["cash"].to_numpy(dtype="float64") * leg_rate if len(legs) else np.array([])
    cash_change = np.zeros(n)
    converted = np.isfinite(leg_cash)
    np.add.at(cash_change, leg_at[leg_in & converted], leg_cash[leg_in & converted])
    flows = np.zeros(n)
    if len(movements):
        move_at = np.searchsorted(day_values, np.asarray(movements["date"], dtype="datetime64[D]"), side="left")
        inside = move_at < n
        amount = movements["amount"].to_numpy(dtype="float64")
        np.add.at(cash_change, move_at[inside], amount[inside])
        external = movements["external"].to_numpy(dtype=bool)
        np.add.at(flows, move_at[inside & external], amount[inside & external])
    cash = float(starting_cash) + np.cumsum(cash_change)

    # Positions in basis units (shares / F at the leg's date), marked at close x F on each day.
    units = np.zeros((n, len(keys)))
    if len(legs):
        leg_key = np.array([key_index[k] for k in legs["key"]], dtype=np.int64)
        leg_units = legs["shares"].to_numpy(dtype="float64") / split_factors(legs["key"], leg_days, splits)
        np.add.at(units, (leg_at[leg_in], leg_key[leg_in]), leg_units[leg_in])
        units = np.cumsum(units, axis=0)
        # Dust from float arithmetic on a closed position is no position.
        units[np.abs(units) < 1e-9] = 0.0
    prices, price_dates = _asof(closes.reindex(columns=keys), dates)
    factor = split_factor_grid(keys, day_values, splits)
    all_rates = fx_rates(fx, currencies, dates, base)
    key_ccy = np.array([ccy_index[currency_of.get(k, base)] for k in keys], dtype=np.int64)
    rates = all_rates[:, key_ccy] if keys else np.ones((n, 0))
    held = units != 0
    cell_value = np.where(held, units * prices * factor * rates, 0.0)
    invested = cell_value.sum(axis=1)
    value = cash + invested

    reasons = np.full(n, "", dtype=object)
    # A leg whose cash cannot be converted leaves the cash unknown from its day on: the root cause first.
    unconverted = np.flatnonzero(leg_in & ~converted)
    if len(unconverted):
        first = unconverted[np.argmin(leg_at[unconverted])]
        label = legs["label"].iat[first] if "label" in legs else f"a leg of {legs['key'].iat[first]}"
        reasons[np.arange(n) >= leg_at[first]] = (
            f"no {legs['currency'].iat[first]}/{base} rate on {pd.Timestamp(leg_days[first]).date()} "
            f"or in the {FX_MAX_AGE_DAYS} days before, to convert {label}")
    unpriced = held & ~np.isfinite(prices)
    no_rate = held & np.isfinite(prices) & ~np.isfinite(rates)
    for i in np.flatnonzero((unpriced.any(axis=1) | no_rate.any(axis=1)) & (reasons == "")):
        day = dates[i].date()
        if unpriced[i].any():
            key = keys[int(np.flatnonzero(unpriced[i])[0])]
            reasons[i] = f"no price for {key} on or before {day}"
        else:
            currency = currencies[key_ccy[int(np.flatnonzero(no_rate[i])[0])]]
            reasons[i] = f"no {currency}/{base} rate on {day} or in the {FX_MAX_AGE_DAYS} days before"
    unvalued = reasons != ""
    value = np.where(unvalued, np.nan, value)
    daily = pd.DataFrame({
        "cash": np.where(unvalued, np.nan, cash),
        "invested": np.where(unvalued, np.nan, invested),
        "value": value,
        "flows": flows,
        "reason": reasons.astype(str),
    }, index=dates)

    holdings = pd.DataFrame(columns=["key", "currency", "shares", "price", "price_date", "rate", "value"])
    if n and keys:
        last = held[-1]
        picked = np.flatnonzero(last)
        holdings = pd.DataFrame({
            "key": [keys[j] for j in picked],
            "currency": [currencies[key_ccy[j]] for j in picked],
            "shares": units[-1, picked] * factor[-1, picked],
            "price": prices[-1, picked],
            "price_date": pd.to_datetime(price_dates[-1, picked]),
            "rate": rates[-1, picked],
            "value": cell_value[-1, picked],
        })
    return daily, holdings


def time_weighted_returns(value, flows, initial):
    """Daily time-weighted returns: r_t = V_t / (V_prev + F_t) - 1.

    value: float64 Series by date (NaN = unvalued day); flows: external flows counted on each day;
    initial: the value before the first day (a portfolio's starting cash). V_prev is the last valued
    day's value; the flows of unvalued days roll into the next valued day. A return whose base
    (V_prev + F_t) is not positive is NaN (undefined), as is the return of an unvalued day.
    """
    v = pd.Series(value, dtype="float64")
    f = pd.Series(flows, dtype="float64").reindex(v.index).fillna(0.0).to_numpy()
    values = v.to_numpy()
    valued = np.isfinite(values)
    # Flows since the previous valued day: cumulative flows now less those at the previous valued day.
    cumulative = np.cumsum(f)
    valued_rows = np.flatnonzero(valued)
    previous_row = np.full(len(values), -1)
    if len(valued_rows):
        marks = np.where(valued, np.arange(len(values)), -1)
        running = np.maximum.accumulate(marks)
        previous_row[1:] = running[:-1]
    base_value = np.where(previous_row >= 0, values[np.maximum(previous_row, 0)], float(initial))
    flows_before = np.where(previous_row >= 0, cumulative[np.maximum(previous_row, 0)], 0.0)
    period_flows = cumulative - flows_before
    denominator = base_value + period_flows
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(valued & (denominator > 0), values / denominator - 1.0, np.nan)
    return pd.Series(r, index=v.index, name="daily_return")


def snapshot_metrics(returns, *, prior_returns=None, prior_cumulative=0.0, window=ROLLING_WINDOW):
    """Cumulative return and rolling volatility / Sharpe for each day of `returns`.

    returns: daily returns (NaN = none) of the days being computed; prior_returns: the returns of the
    days before them (the last window - 1 are enough) and prior_cumulative the cumulative return at
    the last of them, so a computation that starts mid-history continues it exactly. Uses
    quant.metrics: rolling_volatility and rolling_sharpe over the last `window` returns (ddof=1, x
    sqrt(252)). Returns a DataFrame indexed like `returns`: cumulative_return, volatility, sharpe.
    """
    r = pd.Series(returns, dtype="float64")
    prior = pd.Series(prior_returns if prior_returns is not None else [], dtype="float64")
    prior = prior[np.isfinite(prior.to_numpy())].iloc[-(window - 1):] if window > 1 else prior.iloc[:0]
    growth = (1.0 + r.where(np.isfinite(r), 0.0)).cumprod()
    cumulative = (1.0 + float(prior_cumulative)) * growth - 1.0
    joined = pd.concat([pd.Series(prior.to_numpy()), pd.Series(r.to_numpy())], ignore_index=True)
    vol = metrics.rolling_volatility(joined, window).to_numpy()[len(prior):]
    sharpe = metrics.rolling_sharpe(joined, window).to_numpy()[len(prior):]
    return pd.DataFrame({"cumulative_return": cumulative.to_numpy(), "volatility": vol, "sharpe": sharpe},
                        index=r.index)


def period_pnl(value, flows, since, initial=None):
    """Money P&L and time-weighted return from the close of the last valued day on or before `since`
    to the last valued day: (pnl, start date, twr).

    value, flows as in time_weighted_returns (Series by date). pnl = V_end - V_start - flows counted
    after the start day (a deposit is not a gain). When no valued day is on or before `since` (the
    period starts before the book), it is measured from `initial`, the value before the first day (start
    date None). (None, None, None) without a valued day or, then, without `initial`.
    """
    v = pd.Series(value, dtype="float64")
    f = pd.Series(flows, dtype="float64").reindex(v.index).fillna(0.0)
    valued = v[np.isfinite(v.to_numpy())]
    if not len(valued):
        return None, None, None
    end_day = valued.index[-1]
    start = valued[valued.index <= pd.Timestamp(since)]
    if len(start):
        start_day, start_value = start.index[-1], float(start.iloc[-1])
        counted = (f.index > start_day) & (f.index <= end_day)
    elif initial is not None:
        start_day, start_value = None, float(initial)
        counted = f.index <= end_day
    else:
        return None, None, None
    returns = time_weighted_returns(v, f, initial if initial is not None else np.nan)
    window = returns[(returns.index > start_day) if start_day is not None else (returns.index <= end_day)]
    window = window[window.index <= end_day]
    twr = float(np.prod(1.0 + metrics.clean_returns(window).to_numpy()) - 1.0)
    pnl = float(valued.iloc[-1]) - start_value - float(f[counted].sum())
    return pnl, (start_day.date() if start_day is not None else None), twr


def day_of(value):
    """A date from a date, datetime or Timestamp (None stays None)."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value
