"""Market-data writes: ingest daily bars from a provider, flag them and upsert them idempotently."""
import datetime as dt
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import DatabaseError, transaction
from django.utils import timezone
from tqdm import tqdm

from quant.quality import check_bars

from . import adjustments, bulk, calendars, checks, freshness, sources
from .errors import IngestError
from .models import AssetType, Instrument, IngestRun

HTTP_PROVIDERS = ("tiingo", "yahoo", "stooq")  # fetched incrementally (marketdata/incremental.py)
PROVIDERS = ("sample", "csv", "parquet", *HTTP_PROVIDERS)
FLAG_CHUNK = 250_000


@dataclass(frozen=True)
class StoreResult:
    """What store_bars did: rows kept after dropping duplicates, and how each was written."""

    symbols: int = 0
    rows: int = 0
    duplicates: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    flagged: int = 0
    quarantined: int = 0
    actions: int = 0  # corporate actions new or changed
    factors_recomputed: int = 0  # stored bars outside the frame whose adj_factor moved
    warnings: tuple = ()  # actions not stored or dividends not applied, naming symbol and ex-date
    quality: checks.QualitySummary = checks.QualitySummary()  # duplicates, missing sessions, series flags


def ingest_bars(*, provider: str, path=None, symbols: list[str] | None = None, start: dt.date | None = None,
                end: dt.date | None = None, exchange: str | None = None, asset_type: str | None = None,
                requested_by=None, progress: bool = False, universe: str | None = None, full: bool = False,
                now: dt.datetime | None = None, dormant_sessions: int | None = None) -> IngestRun:
    """Read bars from `provider` (and `path`), flag and upsert them, and record the run as an IngestRun.

    Nothing is written unless the whole input is valid. Raises IngestError (after recording the run as
    failed) for bad input; a run where some requested symbols had no rows ends as partial. The returned
    run carries `.result`, the StoreResult, for a caller's summary.

    HTTP providers (tiingo, yahoo, stooq) fetch `symbols`, the members of `universe`, or else the active
    instruments of `exchange`, each only for the sessions after its last stored bar up to `end` (default:
    the last session closed by `now`), or from `start` with `full`; see incremental.ingest_from_provider.
    With `exchange` alone, `dormant_sessions` leaves out the instruments without a bar in that many
    sessions before `end` (the daily chain: codes that stopped trading are not asked every day).
    """
    params = {key: value for key, value in {
        "path": str(path) if path else None, "symbols": symbols, "start": start and start.isoformat(),
        "end": end and end.isoformat(), "exchange": exchange, "asset_type": asset_type, "universe": universe,
        "full": full,
    }.items() if value}
    run = IngestRun.objects.create(provider=provider, params=params, exchange=exchange or "", requested_by=requested_by)
    if provider in HTTP_PROVIDERS:
        from .incremental import ingest_from_provider

        return ingest_from_provider(run, symbols=symbols, universe=universe, exchange=exchange, start=start,
                                    end=end, full=full, asset_type=asset_type, now=now or timezone.now(),
                                    progress=progress, dormant_sessions=dormant_sessions)
    origin = str(path) if path else provider
    try:
        bars, origin = _read(provider=provider, path=path, exchange=exchange)
        bars, missing = _select(bars, symbols=symbols, start=start, end=end)
        run.rows_read = len(bars)
        if not len(bars):
            raise IngestError(f"no rows{_window(symbols, start, end)}", file=origin)
        result = store_bars(bars=bars, source=provider, asset_type=asset_type or AssetType.EQUITY,
                            progress=progress)
    except Exception as exc:
        # Every run leaves its row, whatever stopped it; the bars themselves were rolled back.
        run.status = IngestRun.Status.FAILED
        run.errors = [str(exc) or type(exc).__name__]
        run.finished_at = timezone.now()
        run.save()
        if isinstance(exc, DatabaseError):
            raise IngestError(f"the database refused the bars: {exc}", file=origin) from exc
        raise
    run.errors = [f"{symbol}: no rows in {origin}{_window(None, start, end)}" for symbol in missing]
    run.status = IngestRun.Status.PARTIAL if missing else IngestRun.Status.SUCCESS
    run.symbols = result.symbols
    run.rows_inserted, run.rows_updated, run.rows_unchanged = result.inserted, result.updated, result.unchanged
    run.rows_flagged, run.rows_quarantined = result.flagged, result.quarantined
    run.params = {**run.params, "quality": result.quality.as_dict()}
    run.finished_at = timezone.now()
    run.save()
    run.result = result
    freshness.forget()  # the pages' cached coverage and freshness now read the new bars
    return run


def store_bars(*, bars: pd.DataFrame, source: str, asset_type: str = AssetType.EQUITY,
               progress: bool = False, actions: pd.DataFrame | None = None) -> StoreResult:
    """Flag normalised bars (sources.BAR_COLUMNS), create missing instruments and upsert, in one transaction.

    Of several rows for one (symbol, exchange, date) the last received wins. Zero or negative prices are
    stored as NULL and flagged; bars off the exchange calendar are flagged and quarantined.
    Corporate actions (the frame's optional dividend/split_ratio columns, and `actions` in
    adjustments.ACTION_COLUMNS form) are stored in the same transaction; bars of instruments with
    actions get their adj_factor from them before the upsert (marketdata.adjustments).
    """
    if asset_type not in AssetType.values:
        raise IngestError(f"unknown asset type {asset_type!r} (known: {', '.join(AssetType.values)})")
    received = len(bars)
    bars = _last_received(bars)
    bars, history = _flag(bars, actions=actions)
    now = timezone.now()
    with tqdm(total=len(bars), unit="row", unit_scale=True, desc=f"ingest {source}", disable=not progress,
              file=sys.stderr) as bar, transaction.atomic():
        bars["instrument_id"] = _instrument_ids(bars, asset_type)
        plan = adjustments.prepare_factors(bars, actions=_incoming_actions(bars, actions), source=source)
        counts = bulk.upsert_bars(bars=bars, source=source, now=now, progress=bar.update)
        checks.restate(history.restate)
        recomputed = adjustments.finish_factors(plan)
    flags = bars["flags"].to_numpy()
    return StoreResult(
        symbols=int(bars["instrument_id"].nunique()), rows=len(bars), duplicates=received - len(bars),
        inserted=counts.inserted, updated=counts.updated, unchanged=counts.unchanged,
        flagged=int(np.count_nonzero(flags)), quarantined=int(bars["quarantined"].sum()),
        actions=plan.actions, factors_recomputed=recomputed, warnings=tuple(plan.warnings),
        quality=history.summary + checks.QualitySummary(duplicates=received - len(bars),
                                                        dropped_skipped=counts.dropped),
    )


def _incoming_actions(bars, actions):
    """The frame's own actions (dividend/split_ratio columns) plus those given beside it, or None."""
    carried = adjustments.bar_actions(bars)
    if actions is None or not len(actions):
        return carried if len(carried) else None
    if not len(carried):
        return actions
    # Given actions name symbol and exchange only, so the carried ones are resolved the same way.
    return pd.concat([carried.drop(columns="instrument_id"), actions], ignore_index=True)


def _read(*, provider, path, exchange):
    if provider not in PROVIDERS:
        raise IngestError(f"unknown provider {provider!r} (available: {', '.join(PROVIDERS)})")
    if provider == "sample":
        if path or exchange:
            raise IngestError("the sample provider takes no path or exchange: it ships its own")
        return sources.read_sample(), "the bokeh_sampledata stocks"
    if not path:
        raise IngestError(f"the {provider} provider needs a path")
    return sources.read_file(path, kind=provider, exchange=exchange or "XNYS"), str(path)


def _select(bars, *, symbols, start, end):
    """Rows within the requested symbols and dates, and the requested symbols that have none."""
    keep = np.ones(len(bars), dtype=bool)
    wanted = [s.strip().upper() for s in symbols or [] if s.strip()]
    if wanted:
        keep &= bars["symbol"].isin(wanted).to_numpy()
    if start:
        keep &= (bars["date"] >= pd.Timestamp(start)).to_numpy()
    if end:
        keep &= (bars["date"] <= pd.Timestamp(end)).to_numpy()
    if not keep.all():
        bars = bars[keep].reset_index(drop=True)
    found = set(bars["symbol"].unique()) if wanted else set()
    return bars, [s for s in dict.fromkeys(wanted) if s not in found]


def _window(symbols, start, end):
    parts = []
    if symbols:
        parts.append(f" for {', '.join(symbols)}")
    if start or end:
        parts.append(f" between {start or 'the start'} and {end or 'the end'}")
    return "".join(parts)


def _pair_codes(bars):
    """(code per row for its (symbol, exchange), symbol categories, exchange categories, their count)."""
    symbol = pd.Categorical(bars["symbol"])
    exchange = pd.Categorical(bars["exchange"])
    width = max(len(exchange.categories), 1)
    return symbol.codes.astype(np.int64) * width + exchange.codes, symbol.categories, exchange.categories, width


def _last_received(bars):
    """Drop all but the last received row of each (symbol, exchange, date), sorted by pair then date.

    Rows are never compared by value: a fund whose NAV repeats keeps every day (PITFALLS BR-10).
    """
    pairs = _pair_codes(bars)[0]
    days = np.asarray(bars["date"], dtype="datetime64[D]").astype(np.int64)
    key = (pairs << 32) + (days + (1 << 31))
    order = np.argsort(key, kind="stable")
    key = key[order]
    last = np.ones(len(key), dtype=bool)
    last[:-1] = key[:-1] != key[1:]
    order = order[last]
    if len(order) == len(bars) and (order == np.arange(len(order))).all():
        return bars
    return bars.take(order).reset_index(drop=True)


def _flag(bars, actions=None):
    """Flag bars: quant.quality.check_bars per exchange calendar (NULL bad prices), then the series checks.

    The series checks (jumps, stale runs, flips, reused codes) see each instrument's last stored bars
    too, with stored and incoming corporate actions as explanations (marketdata.checks). Returns the
    flagged frame and a checks.History (stored bars to restate, the run's quality summary).
    """
    checked_columns = ["open", "high", "low", "close", "volume"]
    exchange = pd.Categorical(bars["exchange"])
    calendar_of = [calendars.calendar_name(str(e)) for e in exchange.categories]
    dates = bars["date"].to_numpy()
    values = {c: bars[c].to_numpy(dtype="float64", na_value=np.nan, copy=True) for c in checked_columns}
    flags = np.zeros(len(bars), dtype=np.int64)
    quarantined = np.zeros(len(bars), dtype=bool)
    for name in dict.fromkeys(calendar_of):
        codes = [i for i, calendar in enumerate(calendar_of) if calendar == name]
        rows = np.flatnonzero(np.isin(exchange.codes, codes))
        sessions = None if name is None else calendars.sessions(name)
        # In slices, so check_bars' working copies stay small next to a million-row frame.
        for start in range(0, len(rows), FLAG_CHUNK):
            part = rows[start:start + FLAG_CHUNK]
            checked = check_bars(pd.DataFrame({"date": dates[part], **{c: a[part] for c, a in values.items()}},
                                              copy=False), sessions)
            for column, array in values.items():
                array[part] = checked[column].to_numpy(dtype="float64", na_value=np.nan)
            flags[part] = checked["flags"].to_numpy()
            quarantined[part] = checked["quarantined"].to_numpy()
    pairs, symbol_names, exchange_names, width = _pair_codes(bars)
    carried = [c for c in ("dividend", "split_ratio") if c in bars]
    history = checks.check_with_history(
        pairs=pairs, symbols=symbol_names, exchanges=exchange_names, width=width, dates=dates,
        close=values["close"], volume=values["volume"],
        adj_factor=bars["adj_factor"].to_numpy(dtype="float64", na_value=np.nan), flags=flags,
        quarantined=quarantined, carried=bars[carried] if carried else None, actions=actions)
    out = bars.copy(deep=False)
    for column, array in values.items():
        out[column] = array
    out["flags"] = flags
    out["quarantined"] = quarantined
    return out, history


def _instrument_ids(bars, asset_type):
    """The Instrument id of each row, creating the instruments that do not exist yet."""
    pairs, symbol_names, exchange_names, width = _pair_codes(bars)
    unique, inverse = np.unique(pairs, return_inverse=True)
    # Rows are sorted by pair then date, so a pair's last row is its latest: take name/currency from it.
    last = np.searchsorted(pairs, unique, side="right") - 1
    wanted = {
        (str(symbol_names[u // width]), str(exchange_names[u % width])): (
            str(bars["currency"].iat[i]), str(bars["name"].iat[i]))
        for u, i in zip(unique.tolist(), last.tolist())
    }
    found = _existing(wanted)
    new = [Instrument(symbol=symbol, exchange=exchange, currency=currency, name=name, asset_type=asset_type)
           for (symbol, exchange), (currency, name) in wanted.items() if (symbol, exchange) not in found]
    if new:
        # ignore_conflicts: a concurrent ingest may create the same instrument first (PITFALLS BR-32).
        Instrument.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
        found = _existing(wanted)
    for key, (pk, name) in found.items():
        if not name and wanted[key][1]:
            Instrument.objects.filter(pk=pk).update(name=wanted[key][1], updated_at=timezone.now())
    ids = {key: pk for key, (pk, _) in found.items()}
    by_pair = np.array([ids[key] for key in wanted], dtype=np.int64)
    return by_pair[inverse]


def _existing(wanted):
    """{(symbol, exchange): (id, name)} of the wanted instruments that exist (US venues as one: listings())."""
    return Instrument.objects.listings(wanted)
