"""What the strategies API reads and answers. Metrics are JSON numbers or null (with a reason), never NaN."""
import datetime as dt
from typing import Any, Literal, Optional

from ninja import Field, Schema


class StrategyOut(Schema):
    name: str
    title: str
    summary: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of the parameters: types, defaults, bounds, help")
    defaults: dict[str, Any]


class EngineIn(Schema):
    """How orders are executed; every field is optional (defaults in brackets)."""

    fill: Optional[Literal["open", "close"]] = Field(None, description="Fill at the next bar's open or close [close]")
    commission_bps: Optional[float] = Field(None, ge=0, le=500, description="Commission in bps of notional [5]")
    commission_min: Optional[float] = Field(None, ge=0, le=10_000, description="Minimum commission per order [1]")
    slippage_bps: Optional[float] = Field(None, ge=0, le=500, description="Slippage in bps of notional [5]")
    capital: Optional[float] = Field(None, gt=0, le=1e12, description="Starting capital [100000]")
    fractional: Optional[bool] = Field(None, description="Fractional shares; false rounds toward zero [true]")


class BacktestIn(EngineIn):
    """POST /strategies/backtest: any catalog strategy with its parameters, over a universe and dates."""

    strategy: str = Field(description="A name from GET /strategies, e.g. momentum")
    params: dict[str, Any] = Field(default_factory=dict, description="The strategy's parameters (see its schema)")
    universe: str = Field("SP500", max_length=200, description="SP500 (point-in-time members), SP500:current "
                                                               "(today's members: survivorship-biased) or symbols, "
                                                               "e.g. AAPL,MSFT")
    start: Optional[dt.date] = Field(None, description="First date (default: the first stored bar)")
    end: Optional[dt.date] = Field(None, description="Last date (default: the last stored bar)")


class BacktestCreated(Schema):
    id: int
    status: str
    url: str = Field(description="The run's page")
    api_url: str = Field(description="Poll this for the outcome")


class BiasCheckOut(Schema):
    sharpe: Optional[float]
    delayed_sharpe: Optional[float] = Field(description="Sharpe with every signal executed one more bar later")
    survival: Optional[float] = Field(description="delayed_sharpe / sharpe; null when sharpe <= 0")
    reason: Optional[str] = None


class BacktestOut(Schema):
    id: int
    strategy: str
    universe: str
    universe_note: str
    survivorship_biased: bool
    start: dt.date
    end: dt.date
    first_bar: Optional[dt.date]
    last_bar: Optional[dt.date]
    instruments: int
    params: dict[str, Any]
    status: str
    error: str
    code_version: str
    created_at: dt.datetime
    started_at: Optional[dt.datetime]
    finished_at: Optional[dt.datetime]
    timings: dict[str, float]
    metrics: Optional[dict[str, Optional[float]]] = Field(description="Strategy metrics (docs/metrics.md)")
    undefined: dict[str, str] = Field(description="Why a metric is null")
    drawdown_dates: dict[str, Optional[dt.date]]
    benchmark: Optional[dict[str, Optional[float]]] = Field(description="Equal-weight buy-and-hold of the universe")
    bias_check: Optional[BiasCheckOut]
    psr: Optional[float] = Field(description="Probability that the true Sharpe is above 0")
    final_holdings: list[dict[str, Any]]
    log: list[dict[str, Any]] = Field(description="Orders not placed and why (e.g. below one share)")
    equity_path: str
    trades_path: str
    requested_by: Optional[str]

    @staticmethod
    def resolve_metrics(run):
        return (run.metrics or {}).get("strategy", {}).get("values")

    @staticmethod
    def resolve_undefined(run):
        return (run.metrics or {}).get("strategy", {}).get("undefined", {})

    @staticmethod
    def resolve_drawdown_dates(run):
        return (run.metrics or {}).get("strategy", {}).get("drawdown_dates", {})

    @staticmethod
    def resolve_benchmark(run):
        return (run.metrics or {}).get("benchmark", {}).get("values")

    @staticmethod
    def resolve_bias_check(run):
        return (run.metrics or {}).get("bias_check")

    @staticmethod
    def resolve_psr(run):
        return (run.metrics or {}).get("psr")

    @staticmethod
    def resolve_final_holdings(run):
        return (run.metrics or {}).get("final_holdings", [])

    @staticmethod
    def resolve_requested_by(run):
        return run.requested_by.username if run.requested_by_id else None


class PerformanceRow(Schema):
    id: int
    strategy: str
    universe: str
    start: dt.date
    end: dt.date
    finished_at: dt.datetime
    survivorship_biased: bool
    total_return: Optional[float]
    cagr: Optional[float]
    volatility: Optional[float]
    sharpe: Optional[float]
    sortino: Optional[float]
    max_drawdown: Optional[float]
    calmar: Optional[float]
    benchmark_cagr: Optional[float]
    benchmark_sharpe: Optional[float]
    bias_survival: Optional[float]


class SweepIn(BacktestIn):
    """POST /strategies/sweeps: a grid over up to 5,000 parameter sets of one strategy."""

    grid: dict[str, list[Any]] = Field(description="{parameter: [values]}, e.g. {\"fast\": [10, 20], \"slow\": [100, 200]}")
    train: int = Field(504, ge=20, le=5000, description="Walk-forward: bars of each training window")
    test: int = Field(126, ge=5, le=2000, description="Walk-forward: bars of each test window")
    chunk_size: int = Field(50, ge=1, le=1000, description="Parameter sets per Celery task")


class SweepOut(Schema):
    id: int
    strategy: str
    universe: str
    start: dt.date
    end: dt.date
    status: str
    error: str
    combinations: int
    chunks: int
    done: int = Field(description="Parameter sets with a result so far")
    params: dict[str, Any]
    validation: dict[str, Any]
    results: list[dict[str, Any]]
    url: str


class Message(Schema):
    detail: str
