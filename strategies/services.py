"""Backtests and sweeps: validate a request, record the run, load point-in-time data, run quant, store results.

A run reads the Parquet panels (marketdata.panels.load_panel) of its universe's instruments from
WARMUP_DAYS before its start (lookbacks need history; nothing is traded before the start), asks the
strategy for target weights, and runs quant.backtest three times: the strategy, the equal-weight
buy-and-hold benchmark of the same universe, and the strategy with every signal one bar later (the
bias check). Equity and trades go to Parquet artifacts in STORAGES["marketdata"] under backtests/<id>/.
"""
import datetime as dt
import functools
import io
import itertools
import math
import subprocess
import time
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from pydantic import BaseModel, TypeAdapter, ValidationError

from marketdata import panels, universes
from marketdata.models import Exchange, Instrument, PriceBar, parse_symbol
from parakeet.jobs import JobStatus
from quant import backtest, metrics, strategies, validation
from quant.strategies.trend import crossover_positions
from quant.universe import membership_mask

from .models import BacktestRun, BacktestSweep, SweepResult

WARMUP_DAYS = 800
MAX_LOG = 200
MAX_HOLDINGS = 50
MAX_COMBINATIONS = 5000
SWEEP_CHUNK = 50
CURRENT = ":current"
ENGINE_DEFAULTS = {"fill": "close", "commission_bps": 5.0, "commission_min": 1.0, "slippage_bps": 5.0,
                   "capital": 100_000.0, "fractional": True}
SWEEP_METRICS = ("sharpe", "cagr", "total_return", "volatility", "max_drawdown", "sortino", "calmar",
                 "turnover", "exposure", "orders")


class BacktestRequestError(ValueError):
    """A request that cannot run; `loc` is the path of the bad field, e.g. ("params", "top_n")."""

    def __init__(self, loc, message):
        super().__init__(message)
        self.loc = tuple(loc)
        self.message = message


@dataclass(frozen=True)
class Request:
    """A validated backtest request: everything a run needs, nothing looked up yet."""

    strategy: strategies.Strategy
    params: BaseModel
    universe: str
    start: dt.date
    end: dt.date
    engine: dict


@dataclass
class UniverseData:
    """What a run trades over: the market panels from the warm-up on, and how the universe was built."""

    market: strategies.Market
    first: pd.Timestamp
    survivorship_biased: bool
    note: str
    extra: tuple = ()  # columns loaded for the strategy but outside the universe (dual momentum's defensive asset)


# --- requests ------------------------------------------------------------------------------------------

def validate_request(*, strategy, params=None, universe="SP500", start=None, end=None, engine=None) -> Request:
    """Check a request end to end before anything is written; raises BacktestRequestError naming the field.

    strategy: a catalog name; params: its parameter values (strings allowed); universe: an index code
    (SP500: point-in-time members), CODE:current (today's members over the past: survivorship-biased) or
    symbols ('AAPL,MSFT'); start/end default to the stored data's span; engine: ENGINE_DEFAULTS keys.
    """
    try:
        chosen = strategies.get(strategy or "")
    except strategies.UnknownStrategy as exc:
        raise BacktestRequestError(["strategy"], str(exc)) from None
    try:
        parsed = chosen.parse(params or {})
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        raise BacktestRequestError(["params", *where], message) from None
    engine = _engine(engine or {})
    universe = (universe or "").strip()
    if not universe:
        raise BacktestRequestError(["universe"], "a universe is required: an index code (SP500) or symbols (AAPL,MSFT)")
    spans = data_spans()
    first, last = data_span(spans=spans)
    if first is None:
        raise BacktestRequestError(["universe"], "no price panels yet: ingest bars and run manage.py panels")
    if start is None or end is None:
        # The defaults are the span of the universe's own exchanges: S&P names end where the US data ends,
        # not where the ASX data does (a run past its data would hold cash and dilute every annual figure).
        ids = _universe_ids(universe, start or first, end or last)[0]
        keys = _panel_keys()
        first, last = data_span({keys[pk].split(":", 1)[0] for pk in ids if pk in keys}, spans=spans)
        # ... and from the day by which at least half of its priced names have bars: not from the one
        # name whose history happens to reach back years before the rest (it would trade alone). A strategy
        # that looks back starts WARMUP_DAYS later still, so that its lookbacks are warm for that half too
        # (else the few names with older bars are all it can pick for a year), when the data is long enough.
        firsts = sorted(_first_bars(ids).values())
        if firsts:
            first = max(first, firsts[(len(firsts) - 1) // 2])
            if chosen.warmup and start is None and first + dt.timedelta(days=WARMUP_DAYS) < last:
                first += dt.timedelta(days=WARMUP_DAYS)
    start, end = start or first, end or last
    if start > end:
        raise BacktestRequestError(["start"], f"start {start} is after end {end}")
    if start > last or end < first:
        raise BacktestRequestError(["start"], f"{start}..{end} is outside the stored data ({first}..{last})")
    _universe_ids(universe, start, end)  # raises naming the universe
    for symbol in chosen.extra_symbols(parsed):
        try:
            _symbol_ids([symbol])
        except BacktestRequestError as exc:
            raise BacktestRequestError(["params", "defensive"], exc.message) from None
    return Request(chosen, parsed, universe, start, end, engine)


def _engine(values):
    unknown = set(values) - set(ENGINE_DEFAULTS)
    if unknown:
        raise BacktestRequestError([sorted(unknown)[0]], "unknown engine setting")
    engine = {**ENGINE_DEFAULTS, **{k: v for k, v in values.items() if v is not None}}
    try:
        config = engine_config(engine)
    except backtest.BacktestError as exc:
        field = str(exc).split(" ", 1)[0]
        raise BacktestRequestError([field if field in ENGINE_DEFAULTS else "engine"], str(exc)) from None
    return {**engine, "capital": config.capital}


def engine_config(engine, *, delay=1) -> backtest.Config:
    costs = backtest.Costs(commission_bps=float(engine["commission_bps"]), commission_min=float(engine["commission_min"]),
                           slippage_bps=float(engine["slippage_bps"]))
    return backtest.Config(capital=float(engine["capital"]), fill=engine["fill"], delay=delay,
                           fractional=bool(engine["fractional"]), costs=costs)


def data_spans():
    """{exchange: (first, last)} of each exchange's panels (one read of the manifests)."""
    spans = {}
    for name, manifest in _manifests().items():
        entries = manifest["files"].values()
        if entries:
            spans[name] = (min(dt.date.fromisoformat(e["first_date"]) for e in entries),
                           max(dt.date.fromisoformat(e["last_date"]) for e in entries))
    return spans


def data_span(exchanges=None, spans=None):
    """(first, last) date over the panels of `exchanges` (default: every exchange), (None, None) without.
    spans: data_spans() when the caller has them already."""
    chosen = [span for name, span in (data_spans() if spans is None else spans).items()
              if exchanges is None or name in exchanges]
    if not chosen:
        return None, None
    return min(first for first, _ in chosen), max(last for _, last in chosen)


def default_universe():
    """What the forms offer first: SP500 when it is loaded, else the first few symbols with prices."""
    codes = universes.known_codes()
    if codes:
        return "SP500" if "SP500" in codes else codes[0]
    keys = sorted(_panel_keys().values())
    return ",".join(key.split(":", 1)[1] for key in keys[:5])


def _manifests():
    return {name: m for name in Exchange.values if (m := panels.read_manifest(name))}


def _panel_keys():
    """{instrument_id: 'XNYS:AAPL'} of every instrument of the panels' exchanges (with bars or not)."""
    return {int(pk): f"{name}:{symbol}" for name, manifest in _manifests().items()
            for pk, symbol in manifest["instruments"].items()}


def _first_bars(ids):
    """{instrument_id: date of its first stored bar} of those of `ids` that have bars (one indexed probe each)."""
    first = PriceBar.objects.filter(instrument=OuterRef("pk")).order_by("date").values("date")[:1]
    return dict(Instrument.objects.filter(pk__in=list(ids)).annotate(first=Subquery(first))
                .filter(first__isnull=False).values_list("pk", "first"))


# --- universes -------------------------------------------------------------------------------------------

# A point-in-time universe with more than this share of its members in the period unpriced is flagged
# survivorship-biased: the missing ones are, as a rule, the names that left.
MAX_UNPRICED_MEMBERS = 0.05


def _universe_ids(universe, start, end):
    """(instrument ids, intervals or None, survivorship_biased, note); BacktestRequestError naming the universe."""
    code, _, mode = universe.upper().partition(":")
    known = universes.known_codes()
    if code in known and mode in ("", "CURRENT"):
        if mode == "CURRENT":
            ids = list(universes.members(code, end).values_list("pk", flat=True))
            note = (f"today's members: the {len(ids)} members of {code} on {end} run over the whole period. "
                    "Names that left the index before then are missing: survivorship-biased.")
            return _priced(ids, universe), None, True, note
        intervals = universes.member_intervals(code)
        loaded_from = pd.Timestamp(start - dt.timedelta(days=WARMUP_DAYS))
        live = intervals[(intervals["end"].isna() | (intervals["end"] > loaded_from))
                         & (intervals["start"] <= pd.Timestamp(end))]
        members = live["instrument_id"].unique().tolist()
        ids = _priced(members, universe)
        unpriced = len(members) - len(ids)
        if unpriced > MAX_UNPRICED_MEMBERS * len(members):
            # Typically the names that left the index: a vendor file of today's constituents lacks them, so
            # the point-in-time universe is, in effect, mostly survivors.
            note = (f"point-in-time members of {code}, but {unpriced} of {len(members)} members in the period have "
                    "no stored bars (mostly names since removed or delisted): survivorship-biased.")
            return ids, live[live["instrument_id"].isin(ids)], True, note
        note = (f"point-in-time members of {code}: each day only that day's members are bought, names that "
                "later left or were delisted included (as far as the membership file and the stored bars go).")
        return ids, live[live["instrument_id"].isin(ids)], False, note
    if mode:
        raise BacktestRequestError(["universe"], f"unknown universe {code!r} (known: {', '.join(known) or 'none'})")
    symbols = [s.strip() for s in universe.split(",") if s.strip()]
    ids = _symbol_ids(symbols)
    note = ("symbols picked by hand: chosen knowing how they did, so survivorship-biased unless picked as of the "
            "start date.")
    return ids, None, True, note


def _symbol_ids(symbols):
    keys = {key: pk for pk, key in _panel_keys().items()}
    ids = []
    for text in symbols:
        symbol, exchange = parse_symbol(text)
        found = [pk for key, pk in keys.items() if key.split(":", 1)[1] == symbol
                 and (exchange is None or key.split(":", 1)[0] == exchange)]
        priced = _first_bars(found)  # the manifest also lists instruments without a bar
        found = [pk for pk in found if pk in priced]
        if not found:
            known = ", ".join(universes.known_codes()) or "none"
            raise BacktestRequestError(["universe"], f"{text.strip()!r} is neither a universe (known: {known}) nor a "
                                                     "symbol with stored prices")
        if len(found) > 1:
            raise BacktestRequestError(["universe"], f"{symbol!r} is listed on several exchanges; say which, "
                                                     f"e.g. {sorted(k for k, pk in keys.items() if pk in found)[0]}")
        ids.append(found[0])
    return list(dict.fromkeys(ids))


def _priced(ids, universe):
    """The members with stored bars. The panels' manifest lists every instrument of an exchange, also those
    a universe file created and no bar was ever loaded for: they are not priced."""
    known = _panel_keys()
    with_bars = _first_bars([pk for pk in ids if pk in known])
    priced = [pk for pk in ids if pk in with_bars]
    if not priced:
        raise BacktestRequestError(["universe"], f"no member of {universe} has stored prices")
    return priced


def load_universe(request: Request) -> UniverseData:
    """The panels a run needs (adjusted prices, from WARMUP_DAYS before the start) and the member mask."""
    ids, intervals, biased, note = _universe_ids(request.universe, request.start, request.end)
    brought = request.strategy.extra_symbols(request.params)
    extra = _symbol_ids(brought) if brought else []
    wanted = list(dict.fromkeys([*ids, *extra]))
    begin = request.start - dt.timedelta(days=WARMUP_DAYS) if request.strategy.warmup else request.start
    fields = set(request.strategy.fields) | ({"open"} if request.engine["fill"] == "open" else set())
    frames = {}
    for i, name in enumerate(sorted(fields)):
        column = "volume" if name == "volume" else f"adj_{name}"
        frames[name] = panels.load_panel(field=column, instrument_ids=wanted, start=begin, end=request.end, check=i == 0)
    close = frames["close"]
    for name in frames:
        # One grid for every field (the same bars are behind each; this only guards the alignment).
        frames[name] = frames[name].reindex(index=close.index, columns=close.columns)
    keys = _panel_keys()
    members = None
    if intervals is not None:
        mask = membership_mask(intervals, close.index, by="instrument_id")
        mask.columns = [keys[int(pk)] for pk in mask.columns]
        members = mask.reindex(columns=close.columns, fill_value=False)
        # The defensive asset of dual momentum is always allowed, whatever the index says.
        for pk in extra:
            members[keys[pk]] = True
    after = close.index[close.index >= pd.Timestamp(request.start)]
    if len(after) < 2:
        raise BacktestRequestError(["start"], f"fewer than two sessions with prices in {request.start}..{request.end}")
    market = strategies.Market(close=close, open=frames.get("open"), high=frames.get("high"), low=frames.get("low"),
                               volume=frames.get("volume"), members=members)
    extra_keys = tuple(keys[pk] for pk in extra if pk not in ids)
    return UniverseData(market, after[0], biased, note, extra_keys)


def from_start(targets: pd.DataFrame, first: pd.Timestamp) -> pd.DataFrame:
    """Targets from `first` on, with the position the strategy held before it as a decision on `first`.

    A strategy that only emits changes (trend, breakout) was already long some names when the backtest
    starts: the latest target of each name before `first` is carried onto `first`'s row (bought the bar
    after), so starting on a given date is "following the strategy from that date".
    """
    before, after = targets[targets.index < first], targets[targets.index >= first]
    if not len(before):
        return after
    state = before.ffill().iloc[-1]
    row = after.loc[first].combine_first(state) if first in after.index else state
    return pd.concat([row.to_frame(first).T, after[after.index > first]]).astype("float64")


# --- runs ----------------------------------------------------------------------------------------------

def create_backtest(request: Request, *, requested_by=None, origin: dict | None = None) -> BacktestRun:
    """Record a queued BacktestRun for a validated request; the caller enqueues execute (run_backtest_task).

    origin: where the run was started from, kept with its parameters and shown on its page (a scan or a
    replay of the scanner: {"kind", "id", "name", ...}).
    """
    params = {"strategy": request.params.model_dump(), "engine": request.engine, "universe": request.universe}
    if origin:
        params["origin"] = origin
    return BacktestRun.objects.create(
        strategy=request.strategy.name, universe=request.universe[:32], start=request.start, end=request.end,
        params=params, code_version=code_version(), requested_by=requested_by,
    )


def enqueue_backtest(run: BacktestRun):
    """Start the run when the current transaction commits (a Celery task; in-process without a broker)."""
    from .tasks import run_backtest_task

    transaction.on_commit(lambda: run_backtest_task.delay(run.pk), robust=True)


def start_backtest(*, requested_by=None, origin: dict | None = None, **values) -> BacktestRun:
    """validate_request + create_backtest + enqueue_backtest, in one transaction."""
    request = validate_request(**values)
    with transaction.atomic():
        run = create_backtest(request, requested_by=requested_by, origin=origin)
        enqueue_backtest(run)
    return run


def request_of(run) -> Request:
    strategy = strategies.get(run.strategy)
    return Request(strategy, strategy.parse(run.params["strategy"]), run.params.get("universe", run.universe),
                   run.start, run.end, run.params["engine"])


def execute_backtest(run: BacktestRun) -> BacktestRun:
    """Run a queued BacktestRun and store its metrics and artifacts; a failure is recorded, not raised.

    Writes: the run's status, timings, metrics, log and data range; backtests/<id>/equity.parquet,
    trades.parquet and round_trips.parquet. Running a finished run again recomputes it in place.
    """
    run.status, run.started_at, run.error = JobStatus.RUNNING, timezone.now(), ""
    run.save(update_fields=["status", "started_at", "error"])
    timings = {}
    try:
        request = request_of(run)
        began = time.perf_counter()
        data = load_universe(request)
        timings["load"] = time.perf_counter() - began
        outcome = _simulate(request, data, timings)
        began = time.perf_counter()
        paths = _write_artifacts(run, outcome)
        timings["artifacts"] = time.perf_counter() - began
    except Exception as exc:  # a run always ends with a status, whatever broke
        run.status, run.error, run.finished_at = JobStatus.FAILED, _message(exc), timezone.now()
        run.timings = _rounded(timings)
        run.save(update_fields=["status", "error", "finished_at", "timings"])
        return run
    result = outcome["result"]
    run.equity_path, run.trades_path = paths
    run.metrics = outcome["metrics"]
    run.survivorship_biased, run.universe_note = data.survivorship_biased, data.note[:200]
    run.first_bar, run.last_bar = result.equity.index[0].date(), result.equity.index[-1].date()
    run.instruments = int(data.market.close.loc[data.first:].notna().any().sum())
    run.log = [{"decided": _day(r.decided), "date": _day(r.date), "name": r.name, "reason": r.reason}
               for r in result.log.head(MAX_LOG).itertuples()]
    run.timings = _rounded(timings)
    run.status, run.finished_at = JobStatus.SUCCESS, timezone.now()
    run.save()
    return run


def _simulate(request, data, timings):
    """Strategy, benchmark and delayed-signal runs of one request; their results and JSON-safe metrics."""
    market, first = data.market, data.first
    began = time.perf_counter()
    targets = from_start(request.strategy.targets(market, request.params), first)
    timings["strategy"] = time.perf_counter() - began
    close = market.close.loc[first:]
    opens = market.open.loc[first:] if market.open is not None else None
    config = engine_config(request.engine)
    began = time.perf_counter()
    result = backtest.run(targets, close, open_=opens, config=config)
    timings["engine"] = time.perf_counter() - began
    began = time.perf_counter()
    # The benchmark holds the universe only, not an asset the strategy brought along (a defensive ETF).
    universe = close.drop(columns=list(data.extra))
    held = strategies.Market(close=universe,
                             members=None if market.members is None else market.members.loc[first:, universe.columns])
    bench_targets = strategies.get("buy_and_hold").targets(held, strategies.get("buy_and_hold").parse({}))
    benchmark = backtest.run(bench_targets, universe, open_=opens, config=config)
    timings["benchmark"] = time.perf_counter() - began
    began = time.perf_counter()
    delayed = backtest.run(targets, close, open_=opens, config=engine_config(request.engine, delay=2))
    timings["bias_check"] = time.perf_counter() - began
    summary = result.summary()
    sharpe = summary["values"]["sharpe"]
    delayed_sharpe = delayed.summary()["values"]["sharpe"]
    survival = validation.bias_survival(_nan(sharpe), _nan(delayed_sharpe))
    last = result.weights.iloc[-1]
    top = last[last.abs() > 1e-12].abs().sort_values(ascending=False).index[:MAX_HOLDINGS]
    holdings = [{"name": name, "shares": float(result.holdings[name].iloc[-1]), "weight": float(last[name])}
                for name in top]
    psr = metrics.probabilistic_sharpe(result.returns.iloc[1:])
    return {
        "result": result, "benchmark": benchmark,
        "metrics": jsonable({
            "strategy": summary,
            "benchmark": benchmark.summary(),
            "bias_check": {"sharpe": sharpe, "delayed_sharpe": delayed_sharpe, "survival": survival,
                           "reason": None if math.isfinite(survival) else
                           "the Sharpe without delay is not positive, so there is nothing to survive"},
            "psr": psr if math.isfinite(psr) else None,
            "final_holdings": holdings,
        }),
    }


def _write_artifacts(run, outcome):
    result, benchmark = outcome["result"], outcome["benchmark"]
    equity = pd.DataFrame({
        "date": result.equity.index, "equity": result.equity.to_numpy(), "returns": result.returns.to_numpy(),
        "cash": result.cash.to_numpy(), "gross_exposure": result.gross_exposure.to_numpy(),
        "net_exposure": result.net_exposure.to_numpy(),
        "benchmark_equity": benchmark.equity.to_numpy(), "benchmark_returns": benchmark.returns.to_numpy(),
    })
    trades = result.trades.assign(name=result.trades["name"].astype(str))
    trips = result.round_trips.assign(name=result.round_trips["name"].astype(str))
    base = f"backtests/{run.pk}"
    paths = (_save_parquet(f"{base}/equity.parquet", equity), _save_parquet(f"{base}/trades.parquet", trades))
    _save_parquet(f"{base}/round_trips.parquet", trips)
    return paths


def _save_parquet(key, frame):
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    storage = storages["marketdata"]
    saved = storage.save(key, ContentFile(buffer.getvalue()))
    if saved != key:
        storage.delete(saved)
        raise RuntimeError(f"the storage saved {key} as {saved}: it must overwrite (see STORAGES['marketdata'])")
    return key


def read_artifact(key) -> pd.DataFrame:
    """A run's Parquet artifact as a DataFrame (empty when the run has none)."""
    if not key:
        return pd.DataFrame()
    with storages["marketdata"].open(key, "rb") as handle:
        return pd.read_parquet(io.BytesIO(handle.read()))


@functools.lru_cache(maxsize=1)
def code_version():
    """The git commit Parakeet runs from: settings.CODE_VERSION (PARAKEET_CODE_VERSION), else `git rev-parse
    HEAD`, else ''."""
    if settings.CODE_VERSION:
        return settings.CODE_VERSION[:64]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()[:64] if done.returncode == 0 else ""


# --- sweeps --------------------------------------------------------------------------------------------

def validate_grid(strategy: strategies.Strategy, grid: dict) -> dict:
    """{parameter: [values]} checked against the strategy's model: known names, 1..50 values each, at most
    MAX_COMBINATIONS sets. Values are parsed by the model when each set runs (a set it refuses, e.g. fast
    >= slow, is recorded as skipped). Raises BacktestRequestError naming ("grid", name)."""
    if not grid:
        raise BacktestRequestError(["grid"], "give at least one parameter with a list of values")
    fields = strategy.params.model_fields
    out = {}
    for name, values in grid.items():
        if name not in fields:
            raise BacktestRequestError(["grid", name], f"{strategy.name} has no parameter {name!r} "
                                                       f"(it has: {', '.join(fields) or 'none'})")
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not 1 <= len(values) <= 50:
            raise BacktestRequestError(["grid", name], "give 1 to 50 values")
        info = fields[name]
        checker = TypeAdapter(Annotated[(info.annotation, *info.metadata)])
        checked = []
        for value in values:
            try:
                checked.append(checker.validate_python(value))
            except ValidationError as exc:
                raise BacktestRequestError(["grid", name], f"{value!r}: {exc.errors()[0]['msg']}") from None
        out[name] = checked
    total = math.prod(len(v) for v in out.values())
    if total > MAX_COMBINATIONS:
        raise BacktestRequestError(["grid"], f"{total} parameter sets; at most {MAX_COMBINATIONS}")
    return out


def combinations(sweep: BacktestSweep):
    """The sweep's parameter sets in grid order: base parameters updated with each grid point."""
    grid = sweep.params["grid"]
    names = list(grid)
    return [{**sweep.params["base"], **dict(zip(names, values))} for values in itertools.product(*grid.values())]


def start_sweep(*, grid, walk_forward=None, chunk_size=SWEEP_CHUNK, requested_by=None, **values) -> BacktestSweep:
    """Validate, record a BacktestSweep and enqueue one Celery task per chunk of parameter sets on commit.

    Without a broker the chunks run in-process, one after another, when the transaction commits.
    walk_forward: {"train": bars, "test": bars} (default 504 and 126). Raises BacktestRequestError.
    """
    from .tasks import run_sweep_chunk

    params = values.pop("params", None) or {}
    request = validate_request(params=params, **values)
    grid = validate_grid(request.strategy, grid)
    walk = {"train": 504, "test": 126, **(walk_forward or {})}
    if not (isinstance(walk["train"], int) and isinstance(walk["test"], int) and walk["train"] >= 20 and walk["test"] >= 5):
        raise BacktestRequestError(["walk_forward"], "train must be >= 20 bars and test >= 5 bars")
    total = math.prod(len(v) for v in grid.values())
    chunk_size = max(1, int(chunk_size))
    with transaction.atomic():
        sweep = BacktestSweep.objects.create(
            strategy=request.strategy.name, universe=request.universe[:32], start=request.start, end=request.end,
            params={"base": {k: v for k, v in (params or {}).items() if k not in grid}, "grid": grid,
                    "engine": request.engine, "universe": request.universe, "walk_forward": walk,
                    "chunk_size": chunk_size},
            code_version=code_version(), combinations=total, chunks=math.ceil(total / chunk_size),
            requested_by=requested_by,
        )
        for chunk in range(sweep.chunks):
            transaction.on_commit(lambda chunk=chunk: run_sweep_chunk.delay(sweep.pk, chunk), robust=True)
    return sweep


def execute_sweep_chunk(sweep: BacktestSweep, chunk: int, *, worker="eager"):
    """Run one chunk of a sweep's parameter sets, store a SweepResult per set and the chunk's daily returns;
    the last chunk to finish validates the whole sweep. Re-running a chunk changes nothing."""
    if sweep.status == JobStatus.QUEUED:
        BacktestSweep.objects.filter(pk=sweep.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=timezone.now())
    size = sweep.params["chunk_size"]
    sets = combinations(sweep)[chunk * size:(chunk + 1) * size]
    strategy = strategies.get(sweep.strategy)
    request = Request(strategy, strategy.parse(sweep.params["base"]), sweep.params["universe"], sweep.start,
                      sweep.end, sweep.params["engine"])
    try:
        data = load_universe(request)
        returns, rows = _sweep_sets(request, data, sets, chunk * size)
        _save_parquet(sweep.returns_path(chunk), returns)
    except Exception as exc:
        BacktestSweep.objects.filter(pk=sweep.pk).update(status=JobStatus.FAILED, error=_message(exc),
                                                         finished_at=timezone.now())
        return
    SweepResult.objects.bulk_create(
        [SweepResult(sweep=sweep, chunk=chunk, worker=worker[:200], **row) for row in rows], ignore_conflicts=True)
    _finish_if_complete(sweep.pk)


def _sweep_sets(request, data, sets, offset):
    """(dates x set-index returns, SweepResult field dicts) of parameter sets on one loaded universe."""
    market, first = data.market, data.first
    close = market.close.loc[first:]
    opens = market.open.loc[first:] if market.open is not None else None
    config = engine_config(request.engine)
    parsed, rows = {}, []
    for i, values in enumerate(sets, start=offset):
        try:
            parsed[i] = request.strategy.parse(values)
        except ValidationError as exc:
            rows.append({"index": i, "params": values,
                         "metrics": {"skipped": exc.errors()[0]["msg"].removeprefix("Value error, ")}})
    columns = {}
    fast = _fast_moving_average(request, market, first, parsed, config)
    for i, params in parsed.items():
        if fast is not None:
            returns = pd.Series(fast[i], index=close.index)
            summary = metrics.summarize(returns.iloc[1:], start=close.index[0])
            held = fast["positions"][i]
            summary["values"]["orders"] = float(np.count_nonzero(np.diff(held.astype(int))))
            summary["values"]["exposure"] = metrics.exposure(held.astype(float))
        else:
            targets = from_start(request.strategy.targets(market, params), first)
            result = backtest.run(targets, close, open_=opens, config=config)
            returns, summary = result.returns, result.summary()
        columns[str(i)] = returns.to_numpy()
        picked = {name: summary["values"].get(name) for name in SWEEP_METRICS}
        rows.append({"index": i, "params": params.model_dump(), "metrics": jsonable(picked)})
    frame = pd.DataFrame(columns, index=close.index)
    frame.index.name = "date"
    return frame.reset_index(), rows


def _fast_moving_average(request, market, first, parsed, config):
    """The vectorised path for moving-average sweeps on one instrument with proportional costs, else None."""
    if (request.strategy.name != "moving_average" or market.close.shape[1] != 1 or config.costs.commission_min
            or not config.fractional or market.members is not None or not parsed):
        return None
    close = market.close.iloc[:, 0].dropna()
    if len(close) != len(market.close):
        return None
    modes = {p.mode for p in parsed.values()}
    if len(modes) != 1:
        return None
    keys = list(parsed)
    held = crossover_positions(close.to_numpy(), [(parsed[k].fast, parsed[k].slow) for k in keys], mode=modes.pop(),
                               delay=config.delay)
    at = close.index.get_loc(first)
    held = held[at:]
    held[0] = False  # nothing is held on the first traded bar: a decision there executes the bar after
    fill = market.open.iloc[at:, 0].to_numpy() if config.fill == "open" else None
    cost = (config.costs.commission_bps + config.costs.slippage_bps) / 1e4
    returns = backtest.long_flat_returns(held, close.iloc[at:].to_numpy(), fill_prices=fill, cost_rate=cost)
    out = {k: returns[:, j] for j, k in enumerate(keys)}
    out["positions"] = {k: held[:, j] for j, k in enumerate(keys)}
    return out


def _finish_if_complete(sweep_id):
    """Validate the sweep once every set has a result: best set, deflated Sharpe, walk-forward, bias check."""
    with transaction.atomic():
        sweep = BacktestSweep.objects.select_for_update().get(pk=sweep_id)
        if sweep.status in (JobStatus.SUCCESS, JobStatus.FAILED):
            return
        if sweep.results.count() < sweep.combinations:
            return
        try:
            sweep.validation = jsonable(_validate_sweep(sweep))
            sweep.status = JobStatus.SUCCESS
        except Exception as exc:
            sweep.status, sweep.error = JobStatus.FAILED, _message(exc)
        sweep.finished_at = timezone.now()
        sweep.save()


def _validate_sweep(sweep):
    frames = [read_artifact(sweep.returns_path(chunk)).set_index("date") for chunk in range(sweep.chunks)]
    returns = pd.concat(frames, axis=1)
    results = list(sweep.results.order_by("index"))
    sharpes = {str(r.index): r.metrics.get("sharpe") for r in results}
    valid = {k: v for k, v in sharpes.items() if v is not None}
    if not valid:
        return {"best": None, "reason": "no parameter set has a defined Sharpe"}
    best = max(valid, key=lambda k: (valid[k], -int(k)))
    best_returns = returns[best].iloc[1:]
    walk = validation.walk_forward(returns[list(valid)].iloc[1:], train=sweep.params["walk_forward"]["train"],
                                   test=sweep.params["walk_forward"]["test"])
    strategy = strategies.get(sweep.strategy)
    best_params = next(r.params for r in results if str(r.index) == best)
    request = Request(strategy, strategy.parse(best_params), sweep.params["universe"], sweep.start, sweep.end,
                      sweep.params["engine"])
    data = load_universe(request)
    targets = from_start(strategy.targets(data.market, request.params), data.first)
    close = data.market.close.loc[data.first:]
    opens = data.market.open.loc[data.first:] if data.market.open is not None else None
    delayed = backtest.run(targets, close, open_=opens, config=engine_config(request.engine, delay=2))
    delayed_sharpe = delayed.summary()["values"]["sharpe"]
    return {
        "best": {"index": int(best), "params": best_params, "sharpe": valid[best]},
        "trials": len(valid),
        "psr": metrics.probabilistic_sharpe(best_returns),
        "deflated_sharpe": metrics.deflated_sharpe(best_returns, list(valid.values())),
        "expected_max_sharpe": metrics.expected_max_sharpe(
            float(np.var(np.array(list(valid.values())) / math.sqrt(252), ddof=1)) if len(valid) > 1 else 0.0,
            len(valid)) * math.sqrt(252),
        "bias_check": {"sharpe": valid[best], "delayed_sharpe": delayed_sharpe,
                       "survival": validation.bias_survival(valid[best], _nan(delayed_sharpe))},
        "walk_forward": {
            "train": sweep.params["walk_forward"]["train"], "test": sweep.params["walk_forward"]["test"],
            "oos_sharpe": walk["oos_sharpe"], "is_sharpe": walk["is_sharpe"],
            "oos_total_return": metrics.total_return(walk["oos_returns"]) if len(walk["oos_returns"]) else None,
            "folds": [{**f, "chosen": int(f["chosen"]),
                       "chosen_params": next(r.params for r in results if str(r.index) == f["chosen"])}
                      for f in walk["folds"]],
        },
    }


# --- helpers ---------------------------------------------------------------------------------------------

def jsonable(value):
    """Dates to ISO text, numpy scalars to Python, NaN and infinities to None: safe for JSON columns."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, dt.date)):
        return value.isoformat()[:10]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _nan(value):
    return math.nan if value is None else value


def _day(value):
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _rounded(timings):
    return {k: round(v, 4) for k, v in timings.items()}


def _message(exc):
    if isinstance(exc, BacktestRequestError):
        return f"{'.'.join(exc.loc)}: {exc.message}"
    return str(exc) or type(exc).__name__
