"""Strategy endpoints: the catalog, backtests (202 + run id, then poll), the performance table, sweeps."""
from django.urls import reverse
from ninja import Router, Status
from ninja.errors import ValidationError
from ninja.pagination import paginate

from marketdata.schemas import ValidationErrorOut
from parakeet.lazy import lazy_module
from parakeet.pagination import PageNumberPagination

from .models import BacktestRun, BacktestSweep
from .schemas import (
    BacktestCreated, BacktestIn, BacktestOut, Message, PerformanceRow, StrategyOut, SweepIn, SweepOut,
)

# pandas and the strategies: loaded by the first request that needs them (tests/test_coldstart.py)
services = lazy_module("strategies.services")
strategies = lazy_module("quant.strategies")

router = Router(tags=["strategies"])

ERRORS = {401: Message, 403: Message, 422: ValidationErrorOut}


def _invalid(exc):
    return ValidationError([{"type": "value_error", "loc": ["body", "payload", *exc.loc], "msg": exc.message}])


def _engine(payload):
    return {name: getattr(payload, name) for name in services.ENGINE_DEFAULTS}


@router.get("", response={200: list[StrategyOut], **ERRORS})
def list_strategies(request):
    """Every strategy the desk can backtest, with the JSON Schema of its parameters."""
    return [{"name": s.name, "title": s.title, "summary": s.summary, "params_schema": s.schema(),
             "defaults": s.params().model_dump()} for s in strategies.CATALOG.values()]


@router.post("/backtest", response={202: BacktestCreated, **ERRORS})
def create_backtest(request, payload: BacktestIn):
    """Validate and queue a backtest; answers 202 with the run id at once (the run starts on commit, in-process
    when no Celery broker is configured). Bad input: 422 naming the field, e.g. ["body", "payload", "params",
    "top_n"]. Needs a read_write token or a logged-in session."""
    try:
        run = services.start_backtest(strategy=payload.strategy, params=payload.params, universe=payload.universe,
                                      start=payload.start, end=payload.end, engine=_engine(payload),
                                      requested_by=request.user)
    except services.BacktestRequestError as exc:
        raise _invalid(exc) from None
    return Status(202, {"id": run.pk, "status": run.status, "url": reverse("strategies:backtest_detail", args=[run.pk]),
                        "api_url": reverse("api:get_backtest", args=[run.pk])})


@router.get("/backtests", response={200: list[BacktestOut], **ERRORS})
@paginate(PageNumberPagination, max_page_size=100)
def list_backtests(request, strategy: str = None):
    """Your backtest runs and the desk's (staff: everyone's), newest first; `strategy` filters by name."""
    runs = BacktestRun.objects.visible_to(request.user).select_related("requested_by")
    return runs.filter(strategy=strategy) if strategy else runs


@router.get("/backtests/{run_id}", response={200: BacktestOut, **ERRORS, 404: Message})
def get_backtest(request, run_id: int):
    """One run: status, parameters, data range, timings, metrics (null with a reason when undefined), benchmark,
    bias check, PSR, final holdings and the orders not placed."""
    run = BacktestRun.objects.visible_to(request.user).select_related("requested_by").filter(pk=run_id).first()
    if run is None:
        raise BacktestRun.DoesNotExist(f"no backtest with id {run_id}")
    return run


@router.get("/performance", response={200: list[PerformanceRow], **ERRORS})
def get_performance(request):
    """The latest successful run of each strategy you can see side by side, with its benchmark and bias check."""
    rows = []
    for run in BacktestRun.objects.visible_to(request.user).latest_per_strategy():
        values = run.metrics.get("strategy", {}).get("values", {})
        bench = run.metrics.get("benchmark", {}).get("values", {})
        rows.append({
            "id": run.pk, "strategy": run.strategy, "universe": run.universe, "start": run.start, "end": run.end,
            "finished_at": run.finished_at, "survivorship_biased": run.survivorship_biased,
            **{k: values.get(k) for k in ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                                          "calmar")},
            "benchmark_cagr": bench.get("cagr"), "benchmark_sharpe": bench.get("sharpe"),
            "bias_survival": run.metrics.get("bias_check", {}).get("survival"),
        })
    return rows


@router.post("/sweeps", response={202: SweepOut, **ERRORS})
def create_sweep(request, payload: SweepIn):
    """Queue a parameter sweep: one Celery task per chunk of parameter sets; 202 with the sweep to poll."""
    try:
        sweep = services.start_sweep(
            strategy=payload.strategy, params=payload.params, universe=payload.universe, start=payload.start,
            end=payload.end, engine=_engine(payload), grid=payload.grid,
            walk_forward={"train": payload.train, "test": payload.test}, chunk_size=payload.chunk_size,
            requested_by=request.user)
    except services.BacktestRequestError as exc:
        raise _invalid(exc) from None
    return Status(202, _sweep(BacktestSweep.objects.get(pk=sweep.pk)))


@router.get("/sweeps/{sweep_id}", response={200: SweepOut, **ERRORS, 404: Message})
def get_sweep(request, sweep_id: int):
    """A sweep: progress, every parameter set's metrics, and once done its validation (best set, deflated
    Sharpe over all trials, walk-forward, bias check)."""
    sweep = BacktestSweep.objects.visible_to(request.user).filter(pk=sweep_id).first()
    if sweep is None:
        raise BacktestSweep.DoesNotExist(f"no sweep with id {sweep_id}")
    return _sweep(sweep)


def _sweep(sweep):
    results = [{"index": r.index, "params": r.params, "metrics": r.metrics, "worker": r.worker}
               for r in sweep.results.order_by("index")]
    return {"id": sweep.pk, "strategy": sweep.strategy, "universe": sweep.universe, "start": sweep.start,
            "end": sweep.end, "status": sweep.status, "error": sweep.error, "combinations": sweep.combinations,
            "chunks": sweep.chunks, "done": len(results), "params": sweep.params, "validation": sweep.validation,
            "results": results, "url": reverse("strategies:sweep_detail", args=[sweep.pk])}
