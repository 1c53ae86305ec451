"""Performance and risk metrics: the one implementation behind backtests, portfolio snapshots and the API.

Conventions (docs/metrics.md says the same with the formulas):
- Input is a Series of simple period returns indexed by date, plus the declared `periods_per_year`
  (252 for daily equity data). The factor is never inferred from the index: a holiday-gapped daily
  index has no pandas frequency (PITFALLS BR-03).
- A missing return (NaN) is a period without a valid price (PITFALLS BR-07): it is dropped, never read as
  0% or -100%. Infinite returns are treated as missing too.
- Standard deviations use ddof=1. The risk-free rate is an annual rate, de-annualised geometrically:
  (1 + rf) ** (1 / periods_per_year) - 1 per period.
- The equity curve starts at `initial` (1.0) *before* the first return, so the high-water mark of a
  drawdown starts there and a loss on the first day counts (PITFALLS BR-01).
- CAGR uses calendar time: (final / initial) ** (365.25 / days) - 1, where days runs from the date of
  the starting equity to the last date (PITFALLS BR-02).
- A metric that is undefined for its input (no returns, zero volatility, no losing trade, ...) is NaN;
  `summarize` turns each NaN into None with a reason, so no NaN or Infinity reaches JSON.
"""
import math

import numpy as np
import pandas as pd

TRADING_DAYS = 252
DAYS_PER_YEAR = 365.25


def clean_returns(returns):
    """The returns as a float64 Series with missing and infinite values dropped (the module's NaN policy)."""
    values = pd.Series(returns, dtype="float64")
    return values[np.isfinite(values.to_numpy())]


def returns_from_prices(prices):
    """Simple returns of a price Series over the last valid price: p_t / p_prev_valid - 1.

    Zero, negative and missing prices are missing (PITFALLS BR-07: 10.00, 10.20, 0, 10.10, 10.30 gives
    NaN, +2%, NaN, -0.980%, +1.980%). The first row and rows without a valid price are NaN. A
    dates x names DataFrame gets the same, column by column.
    """
    values = prices.astype("float64") if isinstance(prices, pd.DataFrame) else pd.Series(prices, dtype="float64")
    values = values.where(values > 0)
    previous = values.ffill().shift(1)
    return (values / previous - 1.0).where(values.notna())


def forward_returns(prices, periods):
    """The simple return from each row's price to the price `periods` rows later: p_{t+k} / p_t - 1.

    prices: a Series or a dates x names DataFrame. Zero, negative and missing prices are missing
    (PITFALLS BR-07). The later price is the last valid one on or before row t+k, so a name that stopped
    trading is measured to its last price (a delisting is a real outcome, not a gap to drop). NaN where
    row t has no valid price or row t+k is past the last row (the outcome is not known yet).
    """
    if isinstance(periods, bool) or not isinstance(periods, (int, np.integer)) or periods < 1:
        raise ValueError(f"periods must be a positive integer, got {periods!r}")
    values = prices.astype("float64") if isinstance(prices, pd.DataFrame) else pd.Series(prices, dtype="float64")
    values = values.where(values > 0)
    later = values.ffill().shift(-periods)
    return later / values - 1.0


def per_period_rate(annual_rate, periods_per_year=TRADING_DAYS):
    """An annual rate de-annualised geometrically: 4% a year is 1.04 ** (1/252) - 1 a day."""
    return (1.0 + annual_rate) ** (1.0 / periods_per_year) - 1.0


def total_return(returns):
    """Compounded return of the whole series: prod(1 + r) - 1; 0.0 for no returns."""
    r = clean_returns(returns)
    return float(np.prod(1.0 + r.to_numpy()) - 1.0)


def equity_curve(returns, initial=1.0):
    """Equity after each period, compounding from `initial` before the first return. Missing returns hold."""
    r = pd.Series(returns, dtype="float64")
    growth = (1.0 + r.where(np.isfinite(r), 0.0)).cumprod()
    return growth * initial


def drawdown(returns, initial=1.0):
    """Drawdown after each period: equity / high-water mark - 1 (<= 0), the mark starting at `initial`."""
    equity = equity_curve(returns, initial)
    mark = np.maximum(equity.cummax().to_numpy(), initial)
    return pd.Series(equity.to_numpy() / mark - 1.0, index=equity.index, name="drawdown")


def max_drawdown(returns, initial=1.0):
    """The deepest drawdown (a negative fraction; 0.0 if equity never fell below its mark)."""
    dd = drawdown(returns, initial)
    return float(dd.min()) if len(dd) else 0.0


def drawdown_details(returns, initial=1.0):
    """The deepest drawdown with its dates: {max_drawdown, peak, trough, recovery}.

    peak is the date of the high-water mark before the trough (None when the mark is the starting
    equity, i.e. the loss began on the first period); recovery is the first date equity is back at the
    mark, None if it never was. With no drawdown all three dates are None.
    """
    dd = drawdown(returns, initial)
    if not len(dd) or dd.min() >= 0:
        return {"max_drawdown": 0.0, "peak": None, "trough": None, "recovery": None}
    values = dd.to_numpy()
    trough_at = int(np.argmin(values))
    at_mark = np.flatnonzero(values[: trough_at + 1] >= 0)
    peak = dd.index[at_mark[-1]] if len(at_mark) else None
    after = np.flatnonzero(values[trough_at:] >= 0)
    recovery = dd.index[trough_at + after[0]] if len(after) else None
    return {"max_drawdown": float(values[trough_at]), "peak": peak, "trough": dd.index[trough_at], "recovery": recovery}


def volatility(returns, periods_per_year=TRADING_DAYS):
    """Annualised standard deviation (ddof=1) x sqrt(periods_per_year); NaN with fewer than 2 returns."""
    r = clean_returns(returns)
    if len(r) < 2:
        return math.nan
    return float(r.std(ddof=1) * math.sqrt(periods_per_year))


def sharpe(returns, risk_free=0.0, periods_per_year=TRADING_DAYS):
    """Annualised Sharpe: mean(excess) / std(excess, ddof=1) x sqrt(periods_per_year).

    NaN with fewer than 2 returns or zero volatility (a constant series has no defined ratio).
    """
    r = clean_returns(returns)
    if len(r) < 2:
        return math.nan
    excess = r.to_numpy() - per_period_rate(risk_free, periods_per_year)
    std = excess.std(ddof=1)
    if not std > 1e-15:
        return math.nan
    return float(excess.mean() / std * math.sqrt(periods_per_year))


def downside_deviation(returns, risk_free=0.0, periods_per_year=TRADING_DAYS):
    """Annualised full-sample downside deviation: sqrt(mean(min(excess, 0)^2)) x sqrt(periods_per_year).

    Every period counts in the mean, gains as zeros (the Sortino-Price definition, as empyrical and
    quantstats compute it).
    """
    r = clean_returns(returns)
    if not len(r):
        return math.nan
    shortfall = np.minimum(r.to_numpy() - per_period_rate(risk_free, periods_per_year), 0.0)
    return float(math.sqrt(np.mean(shortfall**2)) * math.sqrt(periods_per_year))


def sortino(returns, risk_free=0.0, periods_per_year=TRADING_DAYS):
    """Annualised Sortino: mean(excess) x periods_per_year / downside_deviation; NaN without a loss."""
    r = clean_returns(returns)
    if len(r) < 2:
        return math.nan
    down = downside_deviation(r, risk_free, periods_per_year)
    if not down > 1e-15:
        return math.nan
    excess = r.to_numpy() - per_period_rate(risk_free, periods_per_year)
    return float(excess.mean() * periods_per_year / down)


def cagr(final, initial, days):
    """Compound annual growth over `days` calendar days: (final / initial) ** (365.25 / days) - 1.

    NaN when the span or the initial value is not positive; a wiped-out account (final 0) is -100%.
    """
    if not (days > 0 and initial > 0 and final >= 0):
        return math.nan
    return float((final / initial) ** (DAYS_PER_YEAR / days) - 1.0)


def cagr_from_returns(returns, start=None, periods_per_year=TRADING_DAYS):
    """CAGR of a dated return series; the starting equity is dated `start`.

    start defaults to one period before the first return (365.25 / periods_per_year calendar days), so
    26 weekly returns dated 2025-02-23..08-17 span 182 days (PITFALLS BR-02 (a): 36.6%, never 4.7%).
    """
    r = clean_returns(returns)
    if not len(r):
        return math.nan
    last = pd.Timestamp(r.index[-1])
    if start is None:
        days = (last - pd.Timestamp(r.index[0])).days + DAYS_PER_YEAR / periods_per_year
    else:
        days = (last - pd.Timestamp(start)).days
    return cagr(1.0 + total_return(r), 1.0, days)


def calmar(cagr_value, max_drawdown_value):
    """CAGR / |max drawdown|; NaN when there was no drawdown."""
    if not max_drawdown_value < 0 or not math.isfinite(cagr_value):
        return math.nan
    return float(cagr_value / abs(max_drawdown_value))


def value_at_risk(returns, level=0.95):
    """Historical one-period VaR: the (1 - level) quantile of returns (numpy's linear interpolation).

    A return, so a loss is negative: -0.021 means a 2.1% loss is exceeded on 5% of days.
    """
    r = clean_returns(returns)
    if not len(r):
        return math.nan
    return float(np.percentile(r.to_numpy(), 100.0 * (1.0 - level)))


def conditional_value_at_risk(returns, level=0.95):
    """Historical CVaR (expected shortfall): the mean of the worst returns up to the VaR cut-off.

    The tail is the k + 1 lowest returns, k = int((n - 1) x (1 - level)), as empyrical counts it.
    """
    r = clean_returns(returns).to_numpy()
    if not len(r):
        return math.nan
    k = int((len(r) - 1) * (1.0 - level))
    return float(np.mean(np.partition(r, k)[: k + 1]))


def period_returns(returns, freq="ME"):
    """Compounded returns per calendar period ("ME" month, "YE" year); periods without a return are dropped."""
    r = clean_returns(returns)
    if not len(r):
        return pd.Series(dtype="float64")
    r.index = pd.DatetimeIndex(r.index)
    grouped = (1.0 + r).resample(freq)
    compounded = grouped.prod() - 1.0
    return compounded[grouped.count() > 0]


def monthly_table(returns):
    """Monthly returns as a year x month (1..12) table, plus a "year" column of the compounded year."""
    months = period_returns(returns, "ME")
    table = pd.DataFrame(
        {"year": months.index.year, "month": months.index.month, "r": months.to_numpy()}
    ).pivot(index="year", columns="month", values="r")
    table = table.reindex(columns=range(1, 13))
    years = period_returns(returns, "YE")
    table["year"] = pd.Series(years.to_numpy(), index=years.index.year)
    table.columns.name = None
    return table


def rolling_volatility(returns, window=21, periods_per_year=TRADING_DAYS):
    """Annualised rolling std (ddof=1) over the last `window` returns; NaN until `window` returns exist.

    Missing returns are skipped, as in `clean_returns`: the window always spans `window` real returns.
    """
    r = pd.Series(returns, dtype="float64")
    valid = np.isfinite(r.to_numpy())
    out = pd.Series(np.nan, index=r.index, name="volatility")
    out[valid] = r[valid].rolling(window, min_periods=window).std(ddof=1).to_numpy() * math.sqrt(periods_per_year)
    return out


def rolling_sharpe(returns, window=21, risk_free=0.0, periods_per_year=TRADING_DAYS):
    """Annualised Sharpe over the last `window` returns; NaN until then and where the window is flat."""
    r = pd.Series(returns, dtype="float64")
    valid = np.isfinite(r.to_numpy())
    excess = r[valid] - per_period_rate(risk_free, periods_per_year)
    rolling = excess.rolling(window, min_periods=window)
    mean, std = rolling.mean().to_numpy(), rolling.std(ddof=1).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(std > 1e-15, mean / std * math.sqrt(periods_per_year), np.nan)
    out = pd.Series(np.nan, index=r.index, name="sharpe")
    out[valid] = ratio
    return out


def win_rate(trade_pnls):
    """Share of closed trades with a positive P&L (a break-even trade is not a win); NaN with no trades."""
    pnl = clean_returns(trade_pnls).to_numpy()
    return float((pnl > 0).mean()) if len(pnl) else math.nan


def profit_factor(trade_pnls):
    """Gross profit / gross loss of closed trades; NaN with no losing trade (the ratio is unbounded)."""
    pnl = clean_returns(trade_pnls).to_numpy()
    loss = -pnl[pnl < 0].sum()
    if not loss > 0:
        return math.nan
    return float(pnl[pnl > 0].sum() / loss)


def turnover(traded_value, equity, periods_per_year=TRADING_DAYS):
    """Annualised one-way turnover: mean(traded value / equity before the trade) x periods_per_year / 2.

    traded_value: per-period gross value bought plus sold (>= 0), aligned with `equity`, the equity the
    trades were sized on. Buying a whole book and selling it again a year later is a turnover of 1.0.
    """
    traded = pd.Series(traded_value, dtype="float64")
    base = pd.Series(equity, dtype="float64")
    if not len(traded):
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(base.to_numpy() > 0, traded.to_numpy() / base.to_numpy(), np.nan)
    ratio = ratio[np.isfinite(ratio)]
    if not len(ratio):
        return math.nan
    return float(ratio.mean() * periods_per_year / 2.0)


def exposure(gross_weights):
    """Share of periods with any position: mean(|gross weight| > 0); NaN with no periods."""
    g = pd.Series(gross_weights, dtype="float64").fillna(0.0).to_numpy()
    return float((np.abs(g) > 1e-12).mean()) if len(g) else math.nan


REASONS = {
    "no_returns": "no returns in the period",
    "too_few": "fewer than two returns",
    "flat": "returns do not vary (zero volatility)",
    "no_losses": "no losing period",
    "no_drawdown": "no drawdown",
    "no_trades": "no closed trades",
    "no_losing_trades": "no losing trade",
    "no_time": "the period spans no time",
}


def summarize(returns, *, start=None, risk_free=0.0, periods_per_year=TRADING_DAYS, trade_pnls=None):
    """Every summary metric of a return series: {"values": {name: float | None}, "undefined": {name: reason}}.

    start: date of the starting equity (see `cagr_from_returns`). trade_pnls: realised P&L per closed
    trade, for win rate and profit factor (omitted when None). Values are plain floats; a NaN or
    infinite metric is None, with its reason under "undefined".
    """
    r = clean_returns(returns)
    dd = drawdown_details(r)
    months = period_returns(r, "ME")
    values = {
        "total_return": total_return(r) if len(r) else math.nan,
        "cagr": cagr_from_returns(r, start=start, periods_per_year=periods_per_year),
        "volatility": volatility(r, periods_per_year),
        "sharpe": sharpe(r, risk_free, periods_per_year),
        "sortino": sortino(r, risk_free, periods_per_year),
        "max_drawdown": dd["max_drawdown"] if len(r) else math.nan,
        "var_95": value_at_risk(r),
        "cvar_95": conditional_value_at_risk(r),
        "best_month": float(months.max()) if len(months) else math.nan,
        "worst_month": float(months.min()) if len(months) else math.nan,
    }
    values["calmar"] = calmar(values["cagr"], values["max_drawdown"])
    if trade_pnls is not None:
        values["win_rate"] = win_rate(trade_pnls)
        values["profit_factor"] = profit_factor(trade_pnls)

    undefined = {}
    for name, value in values.items():
        if value is None or not math.isfinite(value):
            undefined[name] = _reason(name, r, values, trade_pnls)
            values[name] = None
    dates = {key: (None if dd[key] is None else pd.Timestamp(dd[key]).date()) for key in ("peak", "trough", "recovery")}
    return {"values": values, "drawdown_dates": dates, "undefined": undefined}


def _reason(name, r, values, trade_pnls):
    if not len(r):
        return REASONS["no_returns"]
    if name in ("win_rate", "profit_factor"):
        pnl = clean_returns(trade_pnls)
        return REASONS["no_trades"] if not len(pnl) else REASONS["no_losing_trades"]
    if name == "calmar":
        return REASONS["no_drawdown"] if values["max_drawdown"] == 0 else REASONS["no_time"]
    if name == "cagr":
        return REASONS["no_time"]
    if len(r) < 2:
        return REASONS["too_few"]
    if name == "sortino":
        return REASONS["no_losses"]
    return REASONS["flat"]


def sharpe_by_column(returns, risk_free=0.0, periods_per_year=TRADING_DAYS):
    """`sharpe` of each column of a dates x books frame at once (the sweeps): a float64 Series by column.

    Same conventions as `sharpe`: missing and infinite returns are dropped per column, ddof=1, NaN with
    fewer than 2 returns or zero volatility.
    """
    frame = pd.DataFrame(returns, dtype="float64")
    values = frame.to_numpy()
    rate = per_period_rate(risk_free, periods_per_year)
    count = len(values)
    total = values.sum(axis=0)
    if count >= 2 and np.isfinite(total).all():
        # The common case: no missing or infinite return (either would make its column's sum non-finite).
        # Two passes (mean, then squared deviations) as std(ddof=1) computes it, without a NaN mask.
        mean = total / count
        deviation = values - mean
        std = np.sqrt(np.einsum("ij,ij->j", deviation, deviation) / (count - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(std > 1e-15, (mean - rate) / std * math.sqrt(periods_per_year), np.nan)
        return pd.Series(ratio, index=frame.columns, name="sharpe")
    excess = values - rate
    excess[~np.isfinite(excess)] = np.nan
    count = np.sum(~np.isnan(excess), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.nansum(excess, axis=0) / count
        std = np.sqrt(np.nansum((excess - mean) ** 2, axis=0) / (count - 1))
        ratio = np.where((count >= 2) & (std > 1e-15), mean / std * math.sqrt(periods_per_year), np.nan)
    return pd.Series(ratio, index=frame.columns, name="sharpe")


def _moments(r):
    """Skewness and (non-excess) kurtosis with population moments, as Bailey and Lopez de Prado use them."""
    centred = r - r.mean()
    m2 = np.mean(centred**2)
    if not m2 > 0:
        return math.nan, math.nan
    return float(np.mean(centred**3) / m2**1.5), float(np.mean(centred**4) / m2**2)


def probabilistic_sharpe_from_stats(sharpe_per_period, n, skew, kurtosis, benchmark_per_period=0.0):
    """PSR: the probability that the true per-period Sharpe exceeds `benchmark_per_period`.

    Bailey and Lopez de Prado (2012): Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2)),
    SR per period (not annualised), kurtosis not in excess (3 for a normal). NaN when undefined.
    """
    from statistics import NormalDist

    variance = 1.0 - skew * sharpe_per_period + (kurtosis - 1.0) / 4.0 * sharpe_per_period**2
    if not (n > 1 and variance > 0 and math.isfinite(variance)):
        return math.nan
    z = (sharpe_per_period - benchmark_per_period) * math.sqrt(n - 1) / math.sqrt(variance)
    return float(NormalDist().cdf(z))


def probabilistic_sharpe(returns, benchmark=0.0, periods_per_year=TRADING_DAYS):
    """PSR of a return series against an annualised benchmark Sharpe (0: "is the Sharpe above zero?").

    The series' own per-period Sharpe (ddof=1), skewness and kurtosis go into
    `probabilistic_sharpe_from_stats`; NaN with fewer than 3 returns or zero volatility.
    """
    r = clean_returns(returns).to_numpy()
    if len(r) < 3:
        return math.nan
    std = r.std(ddof=1)
    if not std > 1e-15:
        return math.nan
    skew, kurt = _moments(r)
    return probabilistic_sharpe_from_stats(r.mean() / std, len(r), skew, kurt,
                                           benchmark / math.sqrt(periods_per_year))


EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(trial_variance, trials):
    """The Sharpe the best of `trials` unskilled strategies reaches by luck (Bailey and Lopez de Prado 2014).

    sqrt(V) x ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))), V the variance of the trials'
    Sharpe ratios (in the units they are given), gamma the Euler-Mascheroni constant. 0 for one trial.
    """
    from statistics import NormalDist

    if trials < 2:
        return 0.0
    if not (trial_variance >= 0 and math.isfinite(trial_variance)):
        return math.nan
    inv = NormalDist().inv_cdf
    return float(math.sqrt(trial_variance) * ((1 - EULER_GAMMA) * inv(1 - 1 / trials)
                                              + EULER_GAMMA * inv(1 - 1 / (trials * math.e))))


def deflated_sharpe(returns, trial_sharpes, periods_per_year=TRADING_DAYS):
    """DSR: the PSR of `returns` against the Sharpe the best of the trials would reach by luck.

    trial_sharpes: the annualised Sharpe of every parameter set tried (the chosen one included; NaNs are
    left out, and their number is the N of the formula). Their variance sets the luck benchmark
    `expected_max_sharpe`, de-annualised before the PSR. NaN with fewer than 3 returns.
    """
    trials = np.asarray([s for s in np.asarray(trial_sharpes, dtype="float64") if math.isfinite(s)])
    per_period = trials / math.sqrt(periods_per_year)
    variance = float(per_period.var(ddof=1)) if len(per_period) > 1 else 0.0
    benchmark = expected_max_sharpe(variance, len(per_period)) * math.sqrt(periods_per_year)
    return probabilistic_sharpe(returns, benchmark=benchmark, periods_per_year=periods_per_year)
