"""Stock screens over a universe panel: pure, vectorised, and explained rule by rule.

A screen turns a `UniversePanel` (dates x names frames of one exchange calendar) into a `ScreenResult`:
an ordered list of rules, each a dates x names boolean frame, plus the metrics that explain them and a
score that ranks the names that pass every rule. Every rule is computed for every date at once, so the
same call answers "who qualifies as of D" (one row) and "who qualified on each day of ten years" (the
replay). Nothing reads a clock or a file: the as-of date is the row you ask for.

No look-ahead: row t of every frame is computed from rows <= t only (rolling windows, positive shifts,
cross-sections of the same row), so data after the as-of date cannot change an as-of answer.

Conventions (docs/scanner.md says the same at length):
- Windows count sessions, i.e. rows of the panel (the exchange's trading days that have bars).
- Prices: `close`, `high`, `low` are adjusted (raw x adj_factor) and drive returns, averages, highs and
  ranges; `raw_close` (as traded) drives the price and traded-value filters. A price <= 0 is missing,
  never a price (PITFALLS BR-07): it cannot make a -100% return. Quarantined bars arrive as NaN.
- Moving averages and average ranges skip missing values (`quant.indicators.sma_frame`). Returns over n
  sessions compare today's close with the last valid close on or before the session n rows back.
- History: a name is judged only with enough valid closes since its `history_start` (values before it
  are dropped on building the panel). A listing that came from a code change starts its history at the
  change, so a 12-month return is never computed from a history that silently starts a month ago
  (PITFALLS BR-13); the funnel names the names that fell out for that reason.
- Cross-sectional ranks ("top percentile of the universe") are taken among the universe's members on
  that date that have a value.

The momentum-breakout rules that do not depend on the rest of the universe (trend, near the high,
tightening range) are also in `breakout_setup`, a plain function on a panel. The breakout strategy
(`quant.strategies.breakout`) sets names up with `momentum_breakout` itself, so scans and backtests share
one implementation of the rules.
"""
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from .indicators import rolling_max, sma_frames
from .metrics import forward_returns, returns_from_prices
from .screen_names import SCREEN_LABELS

EQUAL_WEIGHT = "equal_weight"
# Floating tolerance for "fewer than top% x n names are better": 7% of 100 is 7.000000000000001.
_EPS = 1e-9


# --- the panel -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UniversePanel:
    """The universe as dates x names frames of one exchange calendar, ready to screen.

    close/high/low: adjusted prices; raw_close: the close as traded; volume: shares. members: True where
    the name was in the universe on that date (point in time). info: one row per name with `exchange`,
    `currency`, `sector` (str). benchmark: the index level for relative strength, on the same dates.
    Build it with `UniversePanel.build`, which aligns and cleans the inputs.
    """

    close: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    raw_close: pd.DataFrame
    volume: pd.DataFrame
    members: pd.DataFrame
    info: pd.DataFrame
    history_start: pd.Series
    benchmark: pd.Series | None = None

    @classmethod
    def build(cls, *, close, high=None, low=None, raw_close=None, volume=None, members=None, info=None,
              history_start=None, benchmark=None):
        """A panel on close's dates and names; the other frames are aligned to it (missing -> NaN / False).

        high/low default to close, raw_close to close, volume to missing. Prices <= 0 become NaN (BR-07).
        history_start: name -> first date the name's history may use (NaT or absent: no limit); every
        value dated before it becomes NaN (BR-13). benchmark: a Series of index levels, forward-filled
        onto the dates (a holiday of the index carries its last level).
        """
        close = pd.DataFrame(close).astype("float64")
        index, names = pd.DatetimeIndex(close.index), close.columns

        def frame(values, default):
            if values is None:
                return default.copy()
            return pd.DataFrame(values).reindex(index=index, columns=names).astype("float64")

        close.index = index
        prices = {"close": close, "high": frame(high, close), "low": frame(low, close),
                  "raw_close": frame(raw_close, close)}
        prices = {k: v.where(v > 0) for k, v in prices.items()}
        volume = frame(volume, pd.DataFrame(np.nan, index=index, columns=names))
        volume = volume.where(volume >= 0)
        starts = pd.Series(pd.NaT, index=names, dtype="datetime64[ns]")
        if history_start is not None:
            given = pd.to_datetime(pd.Series(history_start, dtype="object"))
            starts.update(given.reindex(names).dropna())
        if starts.notna().any():
            before = index.to_numpy()[:, None] < starts.to_numpy()[None, :]
            prices = {k: v.mask(before) for k, v in prices.items()}
            volume = volume.mask(before)
        if members is None:
            members = pd.DataFrame(True, index=index, columns=names)
        else:
            members = pd.DataFrame(members).reindex(index=index, columns=names, fill_value=False).astype(bool)
        base = pd.DataFrame({"exchange": "", "currency": "", "sector": ""}, index=names)
        if info is not None:
            given = pd.DataFrame(info).reindex(names)
            for column in base.columns:
                if column in given:
                    base[column] = given[column].fillna("").astype(str)
        if benchmark is not None:
            level = pd.Series(benchmark, dtype="float64")
            level.index = pd.DatetimeIndex(level.index)
            level = level.where(level > 0).dropna()
            # Carry the index's last level over a date it has no row for, never a level from the future.
            benchmark = level.reindex(index.union(level.index)).ffill().reindex(index)
        return cls(volume=volume, members=members, info=base, history_start=starts, benchmark=benchmark, **prices)

    @property
    def dates(self):
        return self.close.index

    def session_on_or_before(self, day):
        """The last date of the panel on or before `day`, or None when the panel starts after it."""
        at = self.dates.searchsorted(pd.Timestamp(day), side="right")
        return None if at == 0 else self.dates[at - 1]


# --- parameters ------------------------------------------------------------------------------------------

class Filters(BaseModel):
    """Generic filters any screen can add. Per-currency thresholds: a currency not listed is not filtered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_price: dict[str, float] = Field(
        default_factory=dict, description="Minimum close as traded, per currency, e.g. {\"USD\": 5, \"AUD\": 1}")
    min_dollar_volume: dict[str, float] = Field(
        default_factory=dict, description="Minimum average traded value (close x volume) per session, per currency")
    dollar_volume_window: PositiveInt = Field(20, description="Sessions the traded value is averaged over")
    sectors: list[str] = Field(default_factory=list, description="Only these sectors (any case); empty: any")
    exchanges: list[str] = Field(default_factory=list, description="Only these exchanges (XNYS, XASX...); empty: any")

    @field_validator("min_price", "min_dollar_volume")
    @classmethod
    def currencies(cls, value):
        out = {}
        for currency, amount in value.items():
            code = str(currency).strip().upper()
            if len(code) != 3 or not code.isalpha():
                raise ValueError(f"{currency!r} is not a currency code (e.g. USD, AUD)")
            if not np.isfinite(amount) or amount < 0:
                raise ValueError(f"{code}: must be a number >= 0, got {amount}")
            out[code] = float(amount)
        return out

    @field_validator("sectors", "exchanges")
    @classmethod
    def stripped(cls, value):
        return [item.strip() for item in value if item.strip()]


class ScreenParams(BaseModel):
    """What every screen's parameters share: the generic filters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filters: Filters = Field(default_factory=Filters)

    def history_sessions(self) -> int:
        """Valid closes a name needs before it is judged (the screen's longest look back + 1)."""
        raise NotImplementedError

    def history_window(self) -> int:
        """Sessions the history rule counts valid closes over: the closes needed and a tenth more (at least
        5 more), so a few missing bars are tolerated and the count is the same however far back the panel
        goes (a scan and a replay of the same day agree)."""
        need = self.history_sessions()
        return need + max(need // 10, 5)


LIQUID = Filters(min_price={"USD": 5.0, "AUD": 1.0}, min_dollar_volume={"USD": 20e6, "AUD": 5e6})


class MomentumBreakout(ScreenParams):
    """Qullamaggie-style momentum breakout: a top performer, in a clean up trend, coiling near its high."""

    filters: Filters = Field(default_factory=lambda: LIQUID)
    return_windows: tuple[PositiveInt, ...] = Field(
        (21, 63, 126), description="Sessions of the returns ranked across the universe (about 1, 3 and 6 months)")
    top_percent: float = Field(5.0, gt=0, le=100, description="A return qualifies in the top this % of the universe")
    require: Literal["any", "all"] = Field(
        "any", description="any: one of the returns in the top % qualifies (Qullamaggie's three scans); all: every one")
    ma_windows: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (10, 20, 50), description="Close > MA1 > MA2 > MA3, each moving average rising")
    rising_over: PositiveInt = Field(5, description="A moving average is rising when above its value this many sessions ago")
    high_window: PositiveInt = Field(126, description="Sessions of the high the close must be near")
    max_below_high: float = Field(0.15, ge=0, le=1, description="Close at most this fraction below that high")
    atr_short: PositiveInt = Field(10, description="Sessions of the recent average true range")
    atr_long: PositiveInt = Field(50, description="Sessions of the longer average true range")
    max_atr_ratio: float = Field(0.9, gt=0, description="Tightening: recent ATR / longer ATR at most this")

    @model_validator(mode="after")
    def ordered(self):
        if not self.return_windows:
            raise ValueError("return_windows: give at least one window")
        a, b, c = self.ma_windows
        if not a < b < c:
            raise ValueError(f"ma_windows must increase, got {self.ma_windows}")
        if self.atr_short >= self.atr_long:
            raise ValueError(f"atr_short ({self.atr_short}) must be shorter than atr_long ({self.atr_long})")
        return self

    def history_sessions(self):
        return max(max(self.return_windows) + 1, self.ma_windows[2] + self.rising_over, self.high_window,
                   self.atr_long + 1)


class FiftyTwoWeekHigh(ScreenParams):
    """At (or within a set distance of) the highest high of the last 52 weeks."""

    filters: Filters = Field(default_factory=lambda: LIQUID)
    window: PositiveInt = Field(252, description="Sessions in 52 weeks")
    within: float = Field(0.02, ge=0, le=1, description="Close at most this fraction below the 52-week high")

    def history_sessions(self):
        return self.window + 1


class RelativeStrength(ScreenParams):
    """Outperforming the exchange's index, with the relative-strength line at a new high."""

    filters: Filters = Field(default_factory=lambda: LIQUID)
    lookback: PositiveInt = Field(252, description="Sessions of the relative return (252 = 12 months)")
    min_excess: float = Field(0.10, description="Relative return (1 + r) / (1 + r_index) - 1 at least this")
    line_window: PositiveInt = Field(63, description="Sessions of the relative-strength line's high")
    line_within: float = Field(0.02, ge=0, le=1, description="The line at most this fraction below that high")
    benchmark: dict[str, str] = Field(
        default_factory=lambda: {"XASX": "XASX:XJO", "XNYS": EQUAL_WEIGHT},
        description="Index per exchange calendar: an instrument key, or 'equal_weight' (the universe's own average)")

    def history_sessions(self):
        return max(self.lookback + 1, self.line_window)


# --- results ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One rule of a screen: its key, a sentence a trader reads, and where it holds (dates x names).

    detail: what the funnel adds to the rule's entry whatever the date (a sector filter's names that match
    nothing in the panel, the history rule's closes needed)."""

    name: str
    label: str
    passed: pd.DataFrame
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """How to show a metric: `kind` is pct (a signed fraction shown in %), share (an unsigned one), price,
    money, ratio or number; `short` heads a table column."""

    key: str
    label: str
    kind: str
    short: str = ""


@dataclass
class ScreenResult:
    """Rules in funnel order (the first two are always `universe` and `data`), metrics and the score."""

    screen: str
    rules: list[Rule]
    metrics: dict[str, pd.DataFrame]
    shown: list[Metric]
    score: pd.DataFrame
    history_start: pd.Series = field(default_factory=lambda: pd.Series(dtype="datetime64[ns]"))

    def hit_mask(self) -> pd.DataFrame:
        """True where a name passes every rule (dates x names)."""
        passed = self.rules[0].passed.to_numpy().copy()
        for rule in self.rules[1:]:
            passed &= rule.passed.to_numpy()
        first = self.rules[0].passed
        return pd.DataFrame(passed, index=first.index, columns=first.columns)

    def funnel(self, day) -> list[dict]:
        """[{rule, label, passed, alone, ...detail}] on `day` (a date of the panel), in rule order.

        passed: names that pass this rule and every rule before it (the funnel); alone: members with data
        that pass this rule whatever the others say (which rule binds). A rule's `detail` is added as is.
        The history rule says why each member with data fell short of `needed` valid closes in the last
        `window` sessions: `renamed` when its history starts at a code change fewer than `needed` sessions
        before `day` (BR-13: the change is the cause), else `short` with its valid closes, the sessions
        they were counted over (fewer than `window` for a recent listing, with `first`, its first close).
        """
        row = self.rules[0].passed.index.get_loc(pd.Timestamp(day))
        cumulative = np.ones(self.rules[0].passed.shape[1], dtype=bool)
        judged = self.rules[0].passed.to_numpy()[row] & self.rules[1].passed.to_numpy()[row]
        out = []
        for rule in self.rules:
            here = rule.passed.to_numpy()[row]
            cumulative &= here
            entry = {"rule": rule.name, "label": rule.label, "passed": int(cumulative.sum()),
                     "alone": int((judged & here).sum()) if rule.name not in ("universe", "data") else int(cumulative.sum()),
                     **rule.detail}
            if rule.name == "history":
                entry.update(self._history_shortfall(rule, row, judged & ~here))
            out.append(entry)
        return out

    def _history_shortfall(self, rule, row, short):
        """{renamed: [...], short: [...]} for the members with data that failed the history rule on `row`."""
        names, dates = rule.passed.columns, rule.passed.index
        needed, window = rule.detail.get("needed", 0), rule.detail.get("window", 0)
        has_close = self.rules[1].passed.to_numpy()[: row + 1]
        first_row = np.argmax(has_close, axis=0)  # the first session with a close (each name has one today)
        starts = self.history_start.reindex(names).to_numpy()
        # Sessions from the code change to the day: fewer than needed and the change explains the shortfall.
        since_change = np.where(pd.isna(starts), np.iinfo(np.int64).max,
                                row + 1 - dates[: row + 1].searchsorted(pd.DatetimeIndex(starts).fillna(dates[0])))
        renamed = short & (since_change < needed) & (since_change < row + 1)
        closes = self.metrics["history"].to_numpy()[row]
        out = []
        for i in np.flatnonzero(short & ~renamed):
            sessions = int(min(window, row + 1 - first_row[i]))
            entry = {"name": names[i], "closes": int(closes[i]), "sessions": sessions}
            if sessions < window:  # its first close is inside the window: a recent listing
                entry["first"] = dates[first_row[i]].date().isoformat()
            out.append(entry)
        return {
            "renamed": [{"name": name, "history_start": pd.Timestamp(start).date().isoformat()}
                        for name, start in zip(names[renamed], starts[renamed])],
            "short": out,
        }

    def hits(self, day) -> pd.DataFrame:
        """The names passing every rule on `day`: index name, columns rank (1 = best), score and every
        metric's value that day; sorted by score (highest first), then name."""
        day = pd.Timestamp(day)
        passed = self.hit_mask().loc[day]
        names = passed.index[passed.to_numpy()]
        table = pd.DataFrame({"score": self.score.loc[day, names]}, index=names)
        for key, values in self.metrics.items():
            table[key] = values.loc[day, names]
        table = table.rename_axis("name").reset_index().sort_values(["score", "name"], ascending=[False, True],
                                                                   kind="stable")
        table.insert(0, "rank", np.arange(1, len(table) + 1))
        return table.set_index("name")


# --- rules that any screen uses -------------------------------------------------------------------------

def dollar_volume(panel: UniversePanel, window: int) -> pd.DataFrame:
    """Average traded value (raw close x volume) over the last `window` sessions; a session without a
    bar traded nothing (counts as 0). NaN until `window` sessions are in the panel."""
    traded = np.nan_to_num((panel.raw_close * panel.volume).to_numpy(), nan=0.0)
    running = np.cumsum(traded, axis=0)
    sums = np.full(traded.shape, np.nan)
    if window <= len(traded):
        sums[window - 1:] = running[window - 1:]
        sums[window:] -= running[:-window]
    return _frame_like(panel, sums / window)


def period_return(close: pd.DataFrame, sessions: int) -> pd.DataFrame:
    """close_t / (last valid close on or before row t - sessions) - 1; NaN without a close today or then."""
    earlier = close.ffill().shift(sessions)
    return (close / earlier - 1.0).where(close.notna())


def top_percentile(values: pd.DataFrame, eligible: pd.DataFrame, top_percent: float):
    """(passed, percentile) for each name and date among the eligible names that have a value that day.

    passed: fewer than top_percent % of them have a strictly higher value (ties share the better
    place; the best name always passes). percentile: 100 x the share with a value <= this one.
    """
    candidates = np.where(eligible.to_numpy(), values.to_numpy(dtype=np.float64), np.nan)
    ranked = _rank_max(candidates)
    count = (~np.isnan(candidates)).sum(axis=1)[:, None].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        better = count - ranked
        passed = better < top_percent / 100.0 * count - _EPS
        percentile = 100.0 * ranked / count
    passed &= ~np.isnan(ranked)
    frame = lambda a: pd.DataFrame(a, index=values.index, columns=values.columns)  # noqa: E731
    return frame(passed), frame(percentile)


def _rank_max(values):
    """Per row, the number of the row's values <= each value (pandas' rank(axis=1, method="max")); NaN
    stays NaN. Vectorised: sort each row, find where each run of equal values ends, put the ranks back."""
    order = np.argsort(values, axis=1, kind="stable")  # NaN sort last
    ordered = np.take_along_axis(values, order, axis=1)
    rows, cols = values.shape
    position = np.broadcast_to(np.arange(cols), (rows, cols))
    ends_run = np.ones((rows, cols), dtype=bool)
    ends_run[:, :-1] = ordered[:, :-1] != ordered[:, 1:]
    # The end of each element's run: the smallest run end at or after it, found from the right.
    ends = np.where(ends_run, position, cols)
    last = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    ranks = (last + 1).astype(float)
    ranks[np.isnan(ordered)] = np.nan
    out = np.empty_like(ranks)
    np.put_along_axis(out, order, ranks, axis=1)
    return out


def true_range_pct(panel: UniversePanel) -> pd.DataFrame:
    """True range over the previous valid close, as a fraction of it: (max(H, Cp) - min(L, Cp)) / Cp.

    A bar whose high or low is missing uses its close there. NaN without a close today or before.
    """
    close = panel.close
    high = panel.high.fillna(close)
    low = panel.low.fillna(close)
    previous = close.ffill().shift(1)
    top = np.fmax(high.to_numpy(), previous.to_numpy())
    bottom = np.fmin(low.to_numpy(), previous.to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        ranges = (top - bottom) / previous.to_numpy()
    return pd.DataFrame(ranges, index=close.index, columns=close.columns).where(close.notna() & previous.notna())


def _frame_like(panel, values):
    return pd.DataFrame(values, index=panel.dates, columns=panel.close.columns)


def _per_name(panel, mapping):
    """A threshold per name from a per-currency mapping (NaN: the name's currency is not listed)."""
    return panel.info["currency"].str.upper().map(mapping).astype("float64").to_numpy()


def _amounts(mapping, currencies):
    """'AUD 1, USD 5' for the currencies the panel's names trade in (a minimum in another currency filters
    nobody here, so it is not named); '; EUR not filtered' for a currency without a minimum."""
    listed = ", ".join(f"{c} {_short(a)}" for c, a in sorted(mapping.items()) if c in currencies)
    free = sorted(c for c in currencies if c and c not in mapping)
    if not listed:
        return f"(no minimum for {', '.join(free) or 'these names'})"
    return listed + (f"; {', '.join(free)} not filtered" if free else "")


def _short(amount):
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if amount >= size:
            return f"{amount / size:g}{suffix}"
    return f"{amount:g}"


def filter_labels(filters: Filters, currencies) -> dict[str, str]:
    """The labels of the price and traded-value rules for names trading in `currencies` (a universe spread
    over several panels is labelled once, with all of its currencies)."""
    currencies = {str(c).upper() for c in currencies}
    return {"price": f"Close as traded at least {_amounts(filters.min_price, currencies)}",
            "dollar_volume": f"Average traded value over {filters.dollar_volume_window} sessions at least "
                             f"{_amounts(filters.min_dollar_volume, currencies)}"}


def base_rules(panel: UniversePanel, params: ScreenParams, metrics: dict, shown: list) -> list[Rule]:
    """universe, data, then the generic filters that are set, then history (in that order)."""
    filters = params.filters
    has_close = panel.close.notna()
    labels = filter_labels(filters, set(panel.info["currency"]))
    rules = [
        Rule("universe", "Member of the universe on the date", panel.members),
        Rule("data", "Has a usable (not quarantined, > 0) close on the session", has_close),
    ]
    metrics["close"] = panel.close
    metrics["price"] = panel.raw_close
    shown += [Metric("price", "Close as traded", "price", "Price"), Metric("close", "Close, adjusted", "price", "Adj. close")]
    if filters.exchanges:
        wanted = {e.upper() for e in filters.exchanges}
        mask = panel.info["exchange"].str.upper().isin(wanted).to_numpy()
        rules.append(Rule("exchange", f"Listed on {', '.join(sorted(wanted))}",
                          _frame_like(panel, np.broadcast_to(mask, panel.close.shape))))
    if filters.sectors:
        sectors = panel.info["sector"].map(_sector_key)
        mask = sectors.isin({_sector_key(s) for s in filters.sectors}).to_numpy()
        # A sector nobody in the panel has is most likely a typo or another taxonomy: say so, with the known ones.
        unmatched = [s for s in filters.sectors if _sector_key(s) not in set(sectors)]
        known = sorted({s for s in panel.info["sector"] if s.strip()})
        rules.append(Rule("sector", f"Sector is {', '.join(sorted(filters.sectors))}",
                          _frame_like(panel, np.broadcast_to(mask, panel.close.shape)),
                          {"unmatched": unmatched, "known": known}))
    if filters.min_price:
        floor = _per_name(panel, filters.min_price)
        ok = (panel.raw_close.to_numpy() >= floor) | np.isnan(floor)
        rules.append(Rule("price", labels["price"], _frame_like(panel, ok & has_close.to_numpy())))
    if filters.min_dollar_volume:
        window = filters.dollar_volume_window
        traded = dollar_volume(panel, window)
        floor = _per_name(panel, filters.min_dollar_volume)
        ok = (traded.to_numpy() >= floor) | (np.isnan(floor) & has_close.to_numpy())
        metrics["dollar_volume"] = traded
        shown.append(Metric("dollar_volume", f"Average traded value, {window} sessions", "money", f"Value {window}d"))
        rules.append(Rule("dollar_volume", labels["dollar_volume"], _frame_like(panel, ok)))
    need, window = params.history_sessions(), params.history_window()
    metrics["history"] = panel.close.notna().astype("float64").rolling(window, min_periods=1).sum()
    rules.append(Rule("history", f"At least {need} valid closes in the last {window} sessions, under the current code",
                      metrics["history"] >= need, {"needed": need, "window": window}))
    return rules


def _sector_key(text):
    """Sectors compare without case and with runs of spaces as one ('Health  care ' is 'Health Care')."""
    return " ".join(str(text).split()).casefold()


# --- the screens -----------------------------------------------------------------------------------------

def breakout_setup(close: pd.DataFrame, high: pd.DataFrame, low: pd.DataFrame, params: MomentumBreakout | None = None):
    """The momentum-breakout rules that need no universe: one name's own chart says yes or no.

    close/high/low: adjusted prices, dates x names (NaN = missing; prices <= 0 are treated as missing).
    Returns (rules, metrics): rules {"trend", "near_high", "tightening"} of boolean frames, metrics
    {"ma_<w>" for each MA window, "high_<n>", "below_high", "atr_short", "atr_long", "atr_ratio"}.
    - trend: close > MA1 > MA2 > MA3 (simple averages, `ma_windows`) and each MA above its value
      `rising_over` sessions earlier;
    - near_high: close >= (1 - max_below_high) x the highest high of the last `high_window` sessions;
    - tightening: mean true range % over `atr_short` sessions / over `atr_long` <= max_atr_ratio.
    The screen adds the universe-wide momentum rank and the filters.
    """
    return _breakout_setup(UniversePanel.build(close=close, high=high, low=low), params or MomentumBreakout())


def _breakout_setup(panel, params):
    close = panel.close
    a, b, c = params.ma_windows
    averages = sma_frames(close, params.ma_windows)
    rising = {w: averages[w] > averages[w].shift(params.rising_over) for w in params.ma_windows}
    trend = (close > averages[a]) & (averages[a] > averages[b]) & (averages[b] > averages[c])
    for w in params.ma_windows:
        trend &= rising[w]
    highest = rolling_max(panel.high.fillna(close), params.high_window).where(close.notna())
    below = 1.0 - close / highest
    near = below <= params.max_below_high + _EPS
    ranges = sma_frames(true_range_pct(panel), (params.atr_short, params.atr_long))
    short, long_ = ranges[params.atr_short], ranges[params.atr_long]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = short / long_.where(long_ > 0)
    tight = ratio <= params.max_atr_ratio + _EPS
    metrics = {**{f"ma_{w}": averages[w] for w in params.ma_windows}, f"high_{params.high_window}": highest,
               "below_high": below, "atr_short": short, "atr_long": long_, "atr_ratio": ratio}
    return {"trend": trend, "near_high": near, "tightening": tight}, metrics


def momentum_breakout(panel: UniversePanel, params: MomentumBreakout | None = None) -> ScreenResult:
    """Qullamaggie-style momentum breakout over the universe (rules in funnel order):

    universe, data, [exchange, sector], price, dollar_volume, history, then
    - momentum: the return over each of `return_windows` sessions ranked among the universe's members;
      `require="any"` (default): one of them in the top `top_percent` %; "all": every one;
    - trend, near_high, tightening: `breakout_setup`.
    Score: the mean percentile of the returns (100 = best of the universe in every window).
    """
    params = params or MomentumBreakout()
    metrics, shown = {}, []
    rules = base_rules(panel, params, metrics, shown)
    eligible = panel.members & panel.close.notna()
    tops, percentiles = [], []
    for window in params.return_windows:
        returned = period_return(panel.close, window)
        top, pct = top_percentile(returned, eligible, params.top_percent)
        tops.append(top.to_numpy())
        percentiles.append(pct.to_numpy())
        metrics[f"ret_{window}"], metrics[f"pctl_{window}"] = returned, pct
        shown += [Metric(f"ret_{window}", f"Return over {window} sessions", "pct", f"Ret {window}d"),
                  Metric(f"pctl_{window}", f"Percentile of the {window}-session return in the universe", "number",
                         f"Pctl {window}d")]
    combine = np.logical_or if params.require == "any" else np.logical_and
    momentum = combine.reduce(tops)
    windows = "/".join(str(w) for w in params.return_windows)
    rules.append(Rule("momentum", f"{'One' if params.require == 'any' else 'Every one'} of the {windows}-session "
                                  f"returns in the top {params.top_percent:g}% of the universe",
                      _frame_like(panel, momentum)))
    setup, extra = _breakout_setup(panel, params)
    metrics.update(extra)
    a, b, c = params.ma_windows
    rules += [
        Rule("trend", f"Close above MA{a} > MA{b} > MA{c}, each rising over {params.rising_over} sessions",
             setup["trend"]),
        Rule("near_high", f"Close within {params.max_below_high:.0%} of the {params.high_window}-session high",
             setup["near_high"]),
        Rule("tightening", f"Range tightening: ATR{params.atr_short} / ATR{params.atr_long} at most "
                           f"{params.max_atr_ratio:g}", setup["tightening"]),
    ]
    shown += [Metric(f"ma_{w}", f"{w}-session moving average", "price", f"MA{w}") for w in params.ma_windows]
    shown += [Metric(f"high_{params.high_window}", f"{params.high_window}-session high", "price",
                     f"High {params.high_window}d"),
              Metric("below_high", "Below that high", "share", "Below high"),
              Metric("atr_ratio", f"ATR{params.atr_short} / ATR{params.atr_long}", "ratio",
                     f"ATR{params.atr_short}/{params.atr_long}")]
    score = _frame_like(panel, _mean_over(np.stack(percentiles), axis=0))
    return ScreenResult("momentum_breakout", rules, metrics, shown, score, panel.history_start)


def fifty_two_week_high(panel: UniversePanel, params: FiftyTwoWeekHigh | None = None) -> ScreenResult:
    """At or near a 52-week high: universe, data, [filters], history (window + 1 closes), then
    near_high: close >= (1 - within) x the highest high of the last `window` sessions (today included).
    Score: the return over `window` sessions (the 12-month return by default)."""
    params = params or FiftyTwoWeekHigh()
    metrics, shown = {}, []
    rules = base_rules(panel, params, metrics, shown)
    close = panel.close
    highest = rolling_max(panel.high.fillna(close), params.window).where(close.notna())
    below = 1.0 - close / highest
    rules.append(Rule("near_high", f"Close within {params.within:.0%} of the {params.window}-session high",
                      below <= params.within + _EPS))
    returned = period_return(close, params.window)
    metrics.update({f"high_{params.window}": highest, "below_high": below, f"ret_{params.window}": returned})
    shown += [Metric(f"high_{params.window}", f"{params.window}-session high", "price", f"High {params.window}d"),
              Metric("below_high", "Below that high", "share", "Below high"),
              Metric(f"ret_{params.window}", f"Return over {params.window} sessions", "pct", f"Ret {params.window}d")]
    return ScreenResult("high_52w", rules, metrics, shown, returned, panel.history_start)


def relative_strength(panel: UniversePanel, params: RelativeStrength | None = None) -> ScreenResult:
    """Relative strength against the panel's benchmark: universe, data, [filters], history, then
    - benchmark: the index has a level today and `lookback` sessions back;
    - outperform: (1 + r_name) / (1 + r_index) - 1 over `lookback` sessions >= min_excess;
    - rs_line_high: the line close / index level within `line_within` of its `line_window`-session high.
    Score: the relative return. Without a benchmark series no name passes the benchmark rule.
    """
    params = params or RelativeStrength()
    metrics, shown = {}, []
    rules = base_rules(panel, params, metrics, shown)
    close = panel.close
    if panel.benchmark is None:
        level = pd.Series(np.nan, index=panel.dates)
    else:
        level = panel.benchmark.reindex(panel.dates)
    level_then = level.shift(params.lookback)
    has_level = (level.notna() & level_then.notna()).to_numpy()[:, None]
    rules.append(Rule("benchmark", f"Index level today and {params.lookback} sessions back",
                      _frame_like(panel, np.broadcast_to(has_level, close.shape))))
    returned = period_return(close, params.lookback)
    index_return = (level / level_then - 1.0).to_numpy()[:, None]
    relative = (1.0 + returned) / (1.0 + index_return) - 1.0
    rules.append(Rule("outperform", f"Return over {params.lookback} sessions beats the index by at least "
                                    f"{params.min_excess:.0%}", relative >= params.min_excess - _EPS))
    line = close.div(level, axis=0)
    line_high = rolling_max(line, params.line_window).where(close.notna())
    line_below = 1.0 - line / line_high
    rules.append(Rule("rs_line_high", f"Relative-strength line within {params.line_within:.0%} of its "
                                      f"{params.line_window}-session high", line_below <= params.line_within + _EPS))
    metrics.update({f"ret_{params.lookback}": returned,
                    "index_return": _frame_like(panel, np.broadcast_to(index_return, close.shape)),
                    "relative": relative, "line_below_high": line_below})
    shown += [Metric(f"ret_{params.lookback}", f"Return over {params.lookback} sessions", "pct",
                     f"Ret {params.lookback}d"),
              Metric("index_return", f"Index return over {params.lookback} sessions", "pct", "Index ret"),
              Metric("relative", "Relative return against the index", "pct", "Relative"),
              Metric("line_below_high", f"RS line below its {params.line_window}-session high", "share",
                     "RS below high")]
    return ScreenResult("relative_strength", rules, metrics, shown, relative, panel.history_start)


def equal_weight_index(close: pd.DataFrame, members: pd.DataFrame | None = None) -> pd.Series:
    """An equal-weight index of the universe: level 1.0 on the first date, then compounding each
    session's mean daily return of the names that were members and had a return (BR-07: a missing or
    zero price gives no return, not -100%). The benchmark where no index series exists (US data)."""
    daily = returns_from_prices(close)
    if members is not None:
        daily = daily.where(pd.DataFrame(members).reindex(index=daily.index, columns=daily.columns,
                                                          fill_value=False).astype(bool))
    mean = np.nan_to_num(_mean_over(daily.to_numpy(), axis=1), nan=0.0)
    return pd.Series(np.cumprod(1.0 + mean), index=close.index, name="equal_weight")


@dataclass(frozen=True)
class Screen:
    """A screen in the registry: what `manage.py scan --screen` and the API call it."""

    key: str
    label: str
    params: type[ScreenParams]
    run: object
    description: str


SCREENS = {key: Screen(key, SCREEN_LABELS[key], params, run, description) for key, params, run, description in (
    ("momentum_breakout", MomentumBreakout, momentum_breakout,
     "Top 1/3/6-month performers in a rising 10 > 20 > 50-day trend, near the 6-month high, with a "
     "tightening range (Qullamaggie style)."),
    ("high_52w", FiftyTwoWeekHigh, fifty_two_week_high, "At or within 2% of the highest high of the last 52 weeks."),
    ("relative_strength", RelativeStrength, relative_strength,
     "Beating the exchange's index over 12 months, RS line at a 3-month high."),
)}


def screen_params(key: str, *overrides: dict | None) -> ScreenParams:
    """The validated parameters of screen `key`: its defaults with each of `overrides` merged over them in
    turn (`merge_params`: key by key, at every level, so `{"filters": {"sectors": [...]}}` keeps the default
    price and traded-value minimums).

    Raises KeyError for an unknown screen and pydantic.ValidationError naming the bad field.
    """
    model = SCREENS[key].params
    values = model().model_dump(mode="json")
    for override in overrides:
        values = merge_params(values, override)
    return model.model_validate(values)


def merge_params(base: dict, overrides: dict | None) -> dict:
    """`overrides` merged into a copy of `base`: a key given replaces that key only.

    An object merges key by key into the object it replaces, at any depth ({"filters": {"min_price":
    {"USD": 10}}} changes the USD minimum and keeps the AUD one and every other filter); an empty object
    empties it ({"filters": {}}: no filter; {"min_price": {}}: no price minimum); null removes the key, so
    the parameter's default applies ({"min_price": {"AUD": null}}: no AUD minimum); anything else (a
    number, a list) replaces the value.
    """
    out = dict(base)
    for key, value in (overrides or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = merge_params(out[key], value)
        else:
            out[key] = value
    return out


def param_overrides(params: ScreenParams, base: ScreenParams | None = None) -> dict:
    """The smallest overrides that `merge_params` turns `base` (default: the screen's defaults) into
    `params`: what a saved screen stores, and what a form shows as the changes from the defaults."""
    base = base if base is not None else type(params)()
    return _difference(base.model_dump(mode="json"), params.model_dump(mode="json"))


def _difference(base, target):
    out = {key: None for key in base if key not in target}
    for key, value in target.items():
        before = base.get(key)
        if key in base and value == before:
            continue
        if isinstance(value, dict) and value and isinstance(before, dict):
            out[key] = _difference(before, value)
        else:
            out[key] = value
    return out


# --- replay ----------------------------------------------------------------------------------------------

@dataclass
class ReplayReport:
    """What a replayed screen's hits did afterwards.

    summary: {sessions, first, last, hits, days_with_hits, names, horizons: [{sessions, hits: {n, mean,
    median, hit_rate}, universe: {n, mean, hit_rate}, excess: mean of (hit - same-day universe mean),
    pending}]}; hits: one row per hit (date, name, score, fwd_<k>...); daily: per date the number of
    hits and the universe size.
    """

    summary: dict
    hits: pd.DataFrame
    daily: pd.DataFrame


def replay(result: ScreenResult, close: pd.DataFrame, *, start, end, horizons=(5, 20, 60),
           only_new: bool = True) -> ReplayReport:
    """Replay a screen over [start, end] and measure its hits' forward returns against the universe.

    result: the screen over a panel whose rows run from before `start` (warm-up) to after `end` (so the
    outcomes are known); close: that panel's adjusted close. A hit on day t is measured from t's close
    to the close `k` sessions later (`quant.metrics.forward_returns`: a name that stopped trading is
    measured to its last price; an outcome past the last row is pending, not counted). only_new: count
    a name on the first day of each run of consecutive hits (an entry), not every day it stays listed.
    The universe baseline is every member with a close on each replayed day.
    """
    return replay_many([(result, close)], start=start, end=end, horizons=horizons, only_new=only_new)


def replay_many(pairs, *, start, end, horizons=(5, 20, 60), only_new: bool = True) -> ReplayReport:
    """`replay` of one universe held in several panels (one per exchange calendar), pooled.

    pairs: [(ScreenResult, close)], each on its own calendar's rows. Hits and universe returns of all
    panels are pooled; a same-day universe mean is taken within each panel (its own sessions).
    """
    horizons = [int(k) for k in horizons]
    hit_frames, dailies = [], []
    pooled = {k: {"hits": [], "universe": [], "excess": [], "pending": 0} for k in horizons}
    for result, close in pairs:
        dates = close.index
        inside = np.asarray((dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end)))
        mask = result.hit_mask().to_numpy().copy()
        if only_new:
            before = np.vstack([np.zeros((1, mask.shape[1]), dtype=bool), mask[:-1]])
            mask &= ~before
        mask &= inside[:, None]
        universe = (result.rules[0].passed.to_numpy() & result.rules[1].passed.to_numpy()) & inside[:, None]
        rows, cols = np.nonzero(mask)
        hits = pd.DataFrame({"date": dates[rows], "name": close.columns[cols],
                             "score": result.score.to_numpy()[rows, cols]})
        for k in horizons:
            ahead = forward_returns(close, k).to_numpy()
            values = ahead[rows, cols]
            known = ~np.isnan(values)
            base = np.where(universe, ahead, np.nan)
            excess = values - _mean_over(base, axis=1)[rows]
            pooled[k]["hits"].append(values[known])
            pooled[k]["universe"].append(base[~np.isnan(base)])
            pooled[k]["excess"].append(excess[~np.isnan(excess)])
            pooled[k]["pending"] += int((~known).sum())
            hits[f"fwd_{k}"] = values
        hit_frames.append(hits)
        dailies.append(pd.DataFrame({"hits": mask.sum(axis=1), "universe": universe.sum(axis=1)}, index=dates)[inside])
    hits = pd.concat(hit_frames, ignore_index=True)
    daily = pd.concat(dailies).groupby(level=0).sum().sort_index() if dailies else pd.DataFrame(
        columns=["hits", "universe"])
    summary_rows = []
    for k in horizons:
        values, base, excess = (np.concatenate(pooled[k][part]) for part in ("hits", "universe", "excess"))
        summary_rows.append({
            "sessions": k, "hits": _stats(values),
            "universe": {"n": int(base.size), "mean": _mean(base), "hit_rate": _rate(base)},
            "excess": _mean(excess), "pending": pooled[k]["pending"],
        })
    summary = {
        "sessions": int(len(daily)),
        "first": daily.index[0].date().isoformat() if len(daily) else None,
        "last": daily.index[-1].date().isoformat() if len(daily) else None,
        "hits": int(len(hits)), "days_with_hits": int((daily["hits"] > 0).sum()),
        "names": int(hits["name"].nunique()), "only_new": bool(only_new), "horizons": summary_rows,
    }
    return ReplayReport(summary, hits.sort_values(["date", "score", "name"], ascending=[True, False, True],
                                                  kind="stable").reset_index(drop=True), daily)


def _mean_over(values, axis):
    """The mean of the non-NaN values along `axis`; NaN where there are none (no warning)."""
    valid = ~np.isnan(values)
    count = valid.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(valid, values, 0.0).sum(axis=axis) / count, np.nan)


def _stats(values):
    return {"n": int(values.size), "mean": _mean(values),
            "median": float(np.median(values)) if values.size else None, "hit_rate": _rate(values)}


def _mean(values):
    return float(np.mean(values)) if values.size else None


def _rate(values):
    return float(np.mean(values > 0)) if values.size else None
