"""Scans and replays: validate, record a row, run the screen on the panels, write the result atomically.

`start_scan` / `start_replay` check their input and record a queued row (what the API answers 202 with);
`run_scan` / `run_replay` do the work and record how it ended; `scan` does both (the command);
`scan_daily` is the daily chain's hook. Screens themselves are `quant.screens`.
"""
import datetime as dt
import logging
import math
import time

import numpy as np
import pandas as pd
import pydantic
from django.db import transaction
from django.utils import timezone

from marketdata.panels import PanelError
from parakeet.jobs import JobStatus
from quant import screens as quant_screens
from quant.strategies.breakout import params_from_screen
from strategies import services as backtests

from .loading import (
    ScanError, data_span, latest_session, load_universe, universe_calendars, universe_codes, window_start,
)
from .models import SavedScreen, ScanHit, ScanReplay, ScanRun

log = logging.getLogger(__name__)

SPARKLINE_SESSIONS = 63
HORIZONS = (5, 20, 60)
MAX_REPLAY_YEARS = 25
BACKTEST_YEARS = 3  # a scan's one-click backtest runs over the years up to its as-of date

__all__ = ["ScanError", "resolve_screen", "start_scan", "run_scan", "scan", "scan_daily", "save_screen",
           "start_replay", "run_replay", "start_screen_backtest"]


# --- screens and parameters ------------------------------------------------------------------------------

def resolve_screen(name: str) -> tuple[str, SavedScreen | None]:
    """(screen key, saved screen or None) for a saved screen's name or a built-in screen's key."""
    text = (name or "").strip()
    if not text:
        raise ScanError(f"give a screen: a saved one or one of {', '.join(quant_screens.SCREENS)}", field="screen")
    saved = SavedScreen.objects.filter(name=text.lower()).first()
    if saved is not None:
        return saved.screen, saved
    if text.lower() in quant_screens.SCREENS:
        return text.lower(), None
    known = [*SavedScreen.objects.values_list("name", flat=True), *quant_screens.SCREENS]
    raise ScanError(f"unknown screen {text!r} (known: {', '.join(known)})", field="screen")


def validated_params(screen: str, values: dict | None) -> quant_screens.ScreenParams:
    """The screen's parameters from a run's complete `values` (what a run stored); ScanError naming the
    first bad field. A request's overrides go through `requested_params`."""
    return _checked(lambda: quant_screens.SCREENS[screen].params.model_validate(values or {}), values)


def requested_params(screen: str, *layers: dict | None) -> quant_screens.ScreenParams:
    """The parameters a request runs with: the screen's defaults, then each layer (a saved screen's
    parameters, the request's overrides) merged over them key by key at every level
    (quant.screens.merge_params). ScanError naming the first bad field."""
    return _checked(lambda: quant_screens.screen_params(screen, *layers), *layers)


def overrides_of(source, *, saved: SavedScreen | None = None) -> dict:
    """The smallest overrides that give a run's or replay's parameters: over the saved screen's
    parameters when `saved` is given, else over the screen's defaults (what a form pre-fills and what
    "Save screen" stores)."""
    base = requested_params(source.screen, saved.params) if saved is not None else None
    return quant_screens.param_overrides(validated_params(source.screen, source.params), base)


def _checked(build, *layers):
    for values in layers:
        if values is not None and not isinstance(values, dict):
            raise ScanError("params must be an object of parameter names and values", field="params")
    try:
        return build()
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ScanError(f"{where or 'params'}: {first['msg']}", field=f"params.{where}" if where else "params") from None


# --- one scan --------------------------------------------------------------------------------------------

def start_scan(*, screen: str, universe: str | None = None, as_of: dt.date | None = None,
               params: dict | None = None, requested_by=None) -> ScanRun:
    """Check a scan request and record it as a queued ScanRun (not run yet).

    screen: a saved screen's name (its universe and parameters are the defaults) or a built-in screen.
    params override the saved or default parameters. The run uses the latest session with data on or
    before as_of; without as_of, the latest session the panels hold (however old). Raises ScanError naming
    the field: an unknown screen or universe, a parameter out of range, a date in the future.
    """
    kind, saved = resolve_screen(screen)
    universe = (universe or (saved.universe if saved else "")).strip().upper()
    codes = universe_codes(universe)
    model = requested_params(kind, saved.params if saved else None, params)
    today = timezone.localdate()
    given, as_of = as_of is not None, as_of or today
    if as_of > today:
        raise ScanError(f"as_of {as_of} is in the future (today is {today})", field="as_of")
    return ScanRun.objects.create(
        screen=kind, saved_screen=saved, universe="+".join(codes), as_of=as_of,
        params=model.model_dump(mode="json"), requested_by=requested_by,
        context={"requested_as_of": as_of.isoformat(), "as_of_given": given},
    )


def run_scan(run: ScanRun, *, check: bool = True) -> ScanRun:
    """Run a recorded scan: load the universe's panels up to `as_of`, screen them, write funnel and hits.

    The hits and the run's result are written in one transaction. A scan that cannot run (no data, a
    stale panel, a missing benchmark) ends `failed` with the reason in `error`; nothing else is written.
    Returns the run.
    """
    began = time.perf_counter()
    run.status, run.started_at, run.error = JobStatus.RUNNING, timezone.now(), ""
    run.save(update_fields=["status", "started_at", "error"])
    try:
        outcome = _scan(run, check=check)
    except (ScanError, PanelError) as exc:
        return _failed(run, str(exc))
    except Exception as exc:  # a bug must still leave the run finished, and be in the log with its trace
        log.exception("scan run %s failed", run.pk)
        return _failed(run, f"{type(exc).__name__}: {exc}")
    hits, funnel, context = outcome
    context["seconds"] = round(time.perf_counter() - began, 3)
    with transaction.atomic():
        run.hits.all().delete()
        ScanHit.objects.bulk_create(hits, batch_size=500)
        run.funnel, run.context = funnel, {**run.context, **context}
        run.as_of = dt.date.fromisoformat(max(context["sessions"].values()))
        run.hit_count = len(hits)
        run.status, run.finished_at = JobStatus.SUCCESS, timezone.now()
        run.save()
    return run


def _failed(run, message):
    run.status, run.error, run.finished_at = JobStatus.FAILED, message, timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    return run


def _scan(run, *, check):
    params = validated_params(run.screen, run.params)
    screen = quant_screens.SCREENS[run.screen]
    requested = dt.date.fromisoformat(run.context.get("requested_as_of") or run.as_of.isoformat())
    if not run.context.get("as_of_given", True):
        latest = latest_session(run.universe)
        requested = min(requested, latest) if latest else requested
    sessions = max(params.history_window(), SPARKLINE_SESSIONS)
    groups, without_bars = load_universe(run.universe, start=window_start(requested, sessions), end=requested,
                                         benchmarks=getattr(params, "benchmark", None), check=check)
    tables, funnels = [], []
    context = {"sessions": {}, "benchmarks": {}, "calendars_without_bars": without_bars}
    for group in groups:
        result = screen.run(group.panel, params)
        day = group.panel.dates[-1]
        context["sessions"][group.calendar] = day.date().isoformat()
        if group.benchmark:
            context["benchmarks"][group.calendar] = group.benchmark
        funnels.append(result.funnel(day))
        table = result.hits(day)
        table["instrument_id"] = [group.ids[name] for name in table.index]
        closes = group.panel.close.iloc[-SPARKLINE_SESSIONS:]
        table["sparkline"] = [_numbers(closes[name].to_numpy()) for name in table.index]
        tables.append(table)
    context["metrics"] = [{"key": m.key, "label": m.label, "kind": m.kind, "short": m.short} for m in result.shown]
    hits = pd.concat(tables).sort_values(["score"], ascending=False, kind="stable")
    metric_keys = [m.key for m in result.shown]
    # Every hit passed every rule, so its score is a number (a ranked return, a relative return).
    rows = [ScanHit(run=run, instrument_id=int(row["instrument_id"]), rank=rank, score=float(row["score"]),
                    metrics={key: _number(row[key]) for key in metric_keys if key in row},
                    sparkline=row["sparkline"])
            for rank, (_, row) in enumerate(hits.iterrows(), start=1)]
    currencies = {c for group in groups for c in group.panel.info["currency"]}
    return rows, _add_funnels(funnels, universe=run.universe, filters=params.filters, currencies=currencies), context


def _add_funnels(funnels, *, universe, filters, currencies):
    """One funnel for the universe: each rule's counts summed over the calendars' funnels and the names it
    left out joined; the price rules' labels name the universe's currencies; a rule that needs a word
    (a sector nobody has, names short of history) gets a `note`."""
    total = [dict(entry) for entry in funnels[0]]
    for other in funnels[1:]:
        for entry, more in zip(total, other):
            entry["passed"] += more["passed"]
            entry["alone"] += more["alone"]
            for key in ("renamed", "short"):
                if key in entry:
                    entry[key] = entry[key] + more.get(key, [])
            if "unmatched" in entry:
                entry["unmatched"] = [s for s in entry["unmatched"] if s in more.get("unmatched", [])]
                entry["known"] = sorted(set(entry["known"]) | set(more.get("known", [])))
    labels = quant_screens.filter_labels(filters, currencies)
    for entry in total:
        entry["label"] = labels.get(entry["rule"], entry["label"])
        note = _note(entry, universe)
        if note:
            entry["note"] = note
    return total


NOTE_NAMES = 10  # names a funnel note lists before "and N more"


def _note(entry, universe):
    """The sentence under a funnel rule that explains what the counts alone do not."""
    def listed(items):
        more = len(items) - NOTE_NAMES
        return ", ".join(items[:NOTE_NAMES]) + (f" and {more} more" if more > 0 else "")

    if entry.get("unmatched"):
        sectors = ", ".join(repr(s) for s in entry["unmatched"])
        # Quoted: ASX industry groups hold commas ('Food, Beverage & Tobacco').
        known = (", ".join(repr(k) for k in entry["known"])
                 or "none (import_universe --details gives the S&P 500 its sectors)")
        return f"No instrument of {universe} has sector {sectors}; known sectors: {known}."
    if entry["rule"] != "history":
        return ""
    needed, parts = entry.get("needed"), []
    if entry.get("renamed"):
        names = [f"{r['name']} since {r['history_start']}" for r in entry["renamed"]]
        parts.append(f"History starts at a code change fewer than {needed} sessions ago (the older code's bars are "
                     f"another listing's): {listed(names)}.")
    if entry.get("short"):
        names = [f"{s['name']} {s['closes']} since its first bar on {s['first']}" if s["sessions"] < needed
                 else f"{s['name']} {s['closes']} (missing bars)" for s in entry["short"]]
        parts.append(f"Too few valid closes ({needed} needed in the last {entry.get('window', needed)} sessions): "
                     f"{listed(names)}.")
    return " ".join(parts)


def _number(value):
    """A JSON-safe float: NaN and infinities become None (DESIGN: no NaN or Infinity in JSON)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _numbers(values):
    return [_number(v) for v in np.asarray(values, dtype=float)]


def scan(*, screen: str, universe: str | None = None, as_of: dt.date | None = None, params: dict | None = None,
         requested_by=None, check: bool = True) -> ScanRun:
    """start_scan then run_scan, in this process (the command). Raises ScanError for a bad request."""
    return run_scan(start_scan(screen=screen, universe=universe, as_of=as_of, params=params,
                               requested_by=requested_by), check=check)


def scan_daily(*, exchange: str, session: dt.date, run=None) -> dict:
    """The daily chain's hook: run every daily saved screen whose universe trades on `exchange`.

    A screen that already has a successful run for the session with its current parameters is not run
    again (a second daily run changes nothing). A saved screen whose universe is not loaded is skipped
    and named. Returns {"ran": [...], "skipped": [...]} for the chain's step; raises ScanError naming the
    screens that failed, after running all the others.
    """
    from marketdata.models import CALENDAR_OF

    calendar = CALENDAR_OF.get(exchange, exchange)
    ran, skipped, failed = [], [], []
    for saved in SavedScreen.objects.filter(daily=True).order_by("name"):
        try:
            if calendar not in universe_calendars(saved.universe):
                continue
            params = requested_params(saved.screen, saved.params).model_dump(mode="json")
        except ScanError as exc:
            skipped.append({"screen": saved.name, "reason": str(exc)})
            continue
        done = [r for r in ScanRun.objects.successful().filter(saved_screen=saved, universe=saved.universe.upper())
                .filter(context__requested_as_of=session.isoformat()) if r.params == params]
        if done:
            skipped.append({"screen": saved.name, "reason": f"already ran for {session} (run {done[0].pk})"})
            continue
        result = run_scan(start_scan(screen=saved.name, as_of=session))
        entry = {"screen": saved.name, "run": result.pk, "status": result.status, "hits": result.hit_count}
        ran.append(entry)
        if result.status != JobStatus.SUCCESS:
            failed.append(f"{saved.name} (run {result.pk}): {result.error}")
    if failed:
        raise ScanError("scans failed: " + "; ".join(failed))
    return {"ran": ran, "skipped": skipped}


# --- saved screens ---------------------------------------------------------------------------------------

@transaction.atomic
def save_screen(*, name: str, screen: str, universe: str, params: dict | None = None, daily: bool = True,
                description: str = "", user=None) -> SavedScreen:
    """Create or replace the saved screen `name`. `params` are overrides of the screen's defaults, merged
    as a scan merges them; what is stored is the smallest overrides that give the same parameters
    (quant.screens.param_overrides: a run's page posts its `overrides_of`, so the saved screen runs
    with exactly that run's parameters). Only its creator or staff replace a screen (`user` None: a
    command, which may); the creator stays its creator.

    Raises ScanError naming the field: a bad name, a name another trader's (or the desk's) screen has,
    an unknown screen or universe, a bad parameter.
    """
    name = (name or "").strip().lower()
    field = SavedScreen._meta.get_field("name")
    try:
        field.run_validators(name)
    except Exception:
        raise ScanError(f"name {name!r}: lower-case letters, digits, - and _ only (e.g. momentum-us)",
                        field="name") from None
    if not name or len(name) > field.max_length:
        raise ScanError(f"name: give 1 to {field.max_length} characters", field="name")
    if name in quant_screens.SCREENS:
        raise ScanError(f"name {name!r} is a built-in screen's key; choose another", field="name")
    key = (screen or "").strip().lower()
    if key not in quant_screens.SCREENS:
        raise ScanError(f"unknown screen {screen!r} (known: {', '.join(quant_screens.SCREENS)})", field="screen")
    codes = universe_codes(universe)
    overrides = quant_screens.param_overrides(requested_params(key, params))
    existing = SavedScreen.objects.filter(name=name).first()
    if existing is not None and not _may_replace(user, existing):
        raise ScanError(f"name {name!r} is taken by a saved screen you did not create; choose another",
                        field="name")
    saved, _ = SavedScreen.objects.update_or_create(
        name=name, defaults={"screen": key, "universe": "+".join(codes), "params": overrides, "daily": daily,
                             "description": description[:200]},
        create_defaults={"screen": key, "universe": "+".join(codes), "params": overrides, "daily": daily,
                         "description": description[:200], "created_by": user})
    return saved


def _may_replace(user, saved: SavedScreen) -> bool:
    # The daily chain runs saved screens for the whole desk: a trader must not rewrite another's (or the
    # desk's own, which have no creator) by saving under its name.
    if user is None or user.is_staff:
        return True
    return saved.created_by_id is not None and saved.created_by_id == user.pk


# --- replays ---------------------------------------------------------------------------------------------

def start_replay(*, screen: str, start: dt.date, end: dt.date, universe: str | None = None,
                 params: dict | None = None, horizons=HORIZONS, only_new: bool = True,
                 requested_by=None) -> ScanReplay:
    """Check a replay request and record it as a queued ScanReplay. Raises ScanError naming the field."""
    kind, saved = resolve_screen(screen)
    codes = universe_codes((universe or (saved.universe if saved else "")).strip())
    model = requested_params(kind, saved.params if saved else None, params)
    if start is None or end is None:
        raise ScanError("give a start and an end date", field="start" if start is None else "end")
    if start > end:
        raise ScanError(f"start {start} is after end {end}", field="start")
    if end > timezone.localdate():
        raise ScanError(f"end {end} is in the future", field="end")
    if (end - start).days > MAX_REPLAY_YEARS * 366:
        raise ScanError(f"replay at most {MAX_REPLAY_YEARS} years at a time", field="start")
    try:
        horizons = sorted({int(h) for h in horizons})
    except (TypeError, ValueError):
        raise ScanError("horizons must be whole numbers of sessions, e.g. 5,20,60", field="horizons") from None
    if not horizons or horizons[0] < 1 or horizons[-1] > 252:
        raise ScanError("horizons must be between 1 and 252 sessions", field="horizons")
    return ScanReplay.objects.create(
        screen=kind, saved_screen=saved, universe="+".join(codes), start=start, end=end, horizons=horizons,
        only_new=only_new, params=model.model_dump(mode="json"), requested_by=requested_by)


def replay_range(*, universe: str, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The dates the replay form proposes: BACKTEST_YEARS years up to `end` (a scan's as-of date; default
    the latest session the universe's panels hold, else today), starting no earlier than the panels' first
    date. An unknown universe gets the years up to today."""
    try:
        first, last = data_span(universe)
    except ScanError:
        first, last = None, None
    end = end or last or timezone.localdate()
    start = _years_before(end, BACKTEST_YEARS)
    return (max(start, first) if first and first < end else start), end


def run_replay(replay: ScanReplay, *, check: bool = True) -> ScanReplay:
    """Replay the screen day by day over [start, end] with point-in-time members and record its hits'
    forward returns against the universe (quant.screens.replay_many). Failures end `failed` with the
    reason; the result is written in one save. Returns the replay."""
    began = time.perf_counter()
    replay.status, replay.started_at, replay.error = JobStatus.RUNNING, timezone.now(), ""
    replay.save(update_fields=["status", "started_at", "error"])
    try:
        params = validated_params(replay.screen, replay.params)
        screen = quant_screens.SCREENS[replay.screen]
        ahead = max(replay.horizons)
        # After `end`, enough sessions to know the outcomes (never used by the screen's rules).
        groups, without_bars = load_universe(replay.universe, start=window_start(replay.start, params.history_window()),
                               end=min(replay.end + dt.timedelta(days=math.ceil(ahead * 1.5) + 10),
                                       timezone.localdate()),
                               benchmarks=getattr(params, "benchmark", None), check=check)
        pairs = [(screen.run(group.panel, params), group.panel.close) for group in groups]
        report = quant_screens.replay_many(pairs, start=replay.start, end=replay.end, horizons=replay.horizons,
                                           only_new=replay.only_new)
    except (ScanError, PanelError) as exc:
        return _failed(replay, str(exc))
    except Exception as exc:
        log.exception("replay %s failed", replay.pk)
        return _failed(replay, f"{type(exc).__name__}: {exc}")
    ids = {name: pk for group in groups for name, pk in group.ids.items()}
    fwd = [f"fwd_{k}" for k in replay.horizons]
    replay.summary = {**report.summary, "seconds": round(time.perf_counter() - began, 3),
                      "benchmarks": {g.calendar: g.benchmark for g in groups if g.benchmark},
                      "calendars_without_bars": without_bars}
    replay.hits = [{"date": row.date.date().isoformat(), "key": row.name, "instrument": ids.get(row.name),
                    "score": _number(row.score), **{f: _number(getattr(row, f)) for f in fwd}}
                   for row in report.hits.itertuples(index=False)]
    replay.daily = [[day.date().isoformat(), int(n), int(u)]
                    for day, n, u in zip(report.daily.index, report.daily["hits"], report.daily["universe"])]
    replay.status, replay.finished_at = JobStatus.SUCCESS, timezone.now()
    replay.save()
    return replay


# --- the breakout strategy with a screen's rules ---------------------------------------------------------

def start_screen_backtest(*, source: ScanRun | ScanReplay, requested_by=None):
    """Start a backtest of the `breakout` strategy set up by this momentum-breakout scan or replay.

    The strategy's setup parameters are the screen's (quant.strategies.breakout.params_from_screen; its
    entry, stop and exit take their defaults), its universe is the screen's, its range the replay's, or
    the BACKTEST_YEARS years to a scan's as-of date (from no earlier than the panels' first date). Returns
    the queued BacktestRun, which runs when the request commits (strategies.services.start_backtest).
    Raises ScanError naming the problem: another screen, a universe of several codes, a request the
    backtest refuses.
    """
    if source.screen != "momentum_breakout":
        raise ScanError(f"the breakout strategy uses the momentum breakout's rules, not those of "
                        f"{source.screen_label}", field="screen")
    if "+" in source.universe:
        raise ScanError(f"a backtest runs over one universe; this screen ran over {source.universe}", field="universe")
    params = params_from_screen(validated_params(source.screen, source.params))
    origin = {"kind": "replay" if isinstance(source, ScanReplay) else "scan", "id": source.pk, "name": source.name,
              "screen": source.screen}
    if isinstance(source, ScanReplay):
        start, end = source.start, source.end
    else:
        # The years up to the scan, as the replay form proposes them (never before the data's first date).
        start, end = replay_range(universe=source.universe, end=source.as_of)
        origin["as_of"] = end.isoformat()
    try:
        return backtests.start_backtest(strategy="breakout", params=params.model_dump(), universe=source.universe,
                                        start=start, end=end, requested_by=requested_by, origin=origin)
    except backtests.BacktestRequestError as exc:
        raise ScanError(exc.message, field=".".join(exc.loc)) from None


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)
