"""The desk's strategies: pure functions from a Market to target weights, each with a pydantic parameter model.

A strategy is `fn(market, params) -> targets`: targets is a DataFrame indexed by the decision dates (a
subset of market.close's dates), one column per name it trades, values the target weight after the
trade and NaN for "leave this name as it is" (quant.backtest.run's contract). Decisions use data up to
and including their own bar; the engine executes them on a later bar. The CATALOG lists them by name.
"""
from dataclasses import dataclass, field

import pandas as pd
from pydantic import BaseModel, ValidationError

from .allocation import BuyAndHoldParams, DualMomentumParams, MomentumParams, buy_and_hold, dual_momentum, momentum
from .breakout import BreakoutParams, breakout
from .olmar import OlmarParams, olmar
from .trend import MovingAverageParams, moving_average


@dataclass
class Market:
    """The prices a strategy sees: adjusted OHLC and volume panels (dates x names) and who was a member.

    close is required; open, high, low and volume are None unless the strategy asks for them (FIELDS).
    members: a boolean panel of the same shape, True where the name was in the universe on that date
    (None = every name always). Names are column labels such as 'XNYS:AAPL'.
    """

    close: pd.DataFrame
    open: pd.DataFrame | None = None
    high: pd.DataFrame | None = None
    low: pd.DataFrame | None = None
    volume: pd.DataFrame | None = None
    members: pd.DataFrame | None = None

    def member_mask(self):
        if self.members is None:
            return pd.DataFrame(True, index=self.close.index, columns=self.close.columns)
        return self.members.reindex(index=self.close.index, columns=self.close.columns, fill_value=False).astype(bool)


@dataclass(frozen=True)
class Strategy:
    """A catalog entry: the function, its parameter model and the panel fields it reads."""

    name: str
    title: str
    summary: str
    params: type[BaseModel]
    fn: object
    fields: tuple = ("close",)
    extra_symbols: object = field(default=lambda params: [])
    warmup: bool = True  # decides with data from before the backtest's start (lookbacks, averages)

    def parse(self, values: dict | None) -> BaseModel:
        """The parameter model from user values (strings allowed); raises pydantic.ValidationError."""
        return self.params.model_validate(values or {})

    def targets(self, market: Market, params: BaseModel) -> pd.DataFrame:
        return self.fn(market, params)

    def schema(self) -> dict:
        return self.params.model_json_schema()


CATALOG = {s.name: s for s in [
    Strategy("buy_and_hold", "Buy and hold",
             "Equal weights in every member with a price on the first day, never rebalanced: the benchmark.",
             BuyAndHoldParams, buy_and_hold, warmup=False),
    Strategy("moving_average", "Moving-average trend",
             "Long each name while its fast average is above its slow one (crossover), or while its close is "
             "above its average (filter); flat otherwise. Each position is an equal slot of the equity.",
             MovingAverageParams, moving_average),
    Strategy("momentum", "Cross-sectional momentum",
             "Each month, hold the top N members by their return over the lookback, skipping the most recent "
             "month(s), equally or inverse-volatility weighted.",
             MomentumParams, momentum),
    Strategy("dual_momentum", "Dual momentum",
             "Each month, pick the best names by lookback return (relative momentum); a pick whose return is "
             "not above the threshold (absolute momentum) gives its slot to the defensive asset.",
             DualMomentumParams, dual_momentum, extra_symbols=lambda p: [p.defensive] if p.defensive else []),
    Strategy("breakout", "Momentum breakout (Qullamaggie)",
             "The scanner's momentum-breakout setup (a top performer of the universe in a rising trend, near "
             "its high, range tightening), entered when it breaks out on volume; exit at an ATR stop below the "
             "breakout or when the close falls under a trailing average.",
             BreakoutParams, breakout, fields=("close", "high", "low", "volume")),
    Strategy("olmar", "OLMAR",
             "On-line moving-average reversion (Li and Hoi 2012): each day, move the portfolio toward the names "
             "whose moving average is furthest above their price, rebalancing every day.",
             OlmarParams, olmar),
]}


class UnknownStrategy(KeyError):
    def __str__(self):
        return self.args[0]


def get(name: str) -> Strategy:
    """The catalog entry called `name`; UnknownStrategy naming the known ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownStrategy(f"unknown strategy {name!r} (known: {', '.join(CATALOG)})") from None


__all__ = ["CATALOG", "Market", "Strategy", "UnknownStrategy", "ValidationError", "get"]
