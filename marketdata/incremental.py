"""Incremental ingest from the HTTP providers: fetch only the sessions each instrument lacks, then store.

For each instrument the window is the exchange-calendar sessions after its last stored bar (or from
`start` with `full`), up to `end`; an instrument with nothing to fetch costs no request. Instruments
sharing a window go to the provider as one batch. How the run ends:

    success         every symbol came back with its bars
    partial         some symbols had no data, an error or missing sessions ("SYMBOL: why" in errors)
    rate_limited    the provider still throttled some symbols after the retries: nothing written for
                    them, retry_at set; the others are stored
    provider_error  a whole multi-symbol batch came back empty at once, or every symbol failed:
                    nothing is written and nothing is marked delisted (an alert is logged)

"No data" is never taken to mean "delisted": a fetch never changes Instrument.active.
"""
import datetime as dt
import logging
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from django.db import DatabaseError
from django.db.models import Max
from django.utils import timezone

from . import calendars
from .errors import IngestError
from .models import AssetType, Instrument, IngestRun
from .providers import ProviderError, get_provider
from .providers.base import SymbolRequest
from .providers.symbols import SymbolError, parse

logger = logging.getLogger("marketdata.ingest")

# When the provider throttled us without a Retry-After, try again after this long.
RETRY_DELAY = dt.timedelta(minutes=15)
DEFAULT_EXCHANGE = "XNYS"  # a bare symbol nobody has stored yet is a US listing, as at every provider
MISSING_LISTED = 3  # missing sessions named in a message, at most


@dataclass
class Target:
    """One instrument to bring up to date: what to ask for, what is stored, the sessions it lacks."""

    request: SymbolRequest
    last: dt.date | None
    sessions: list


def ingest_from_provider(run, *, symbols, universe, exchange, start, end, full, asset_type, now, progress=False,
                         dormant_sessions=None):
    """Fetch the missing sessions of the selected instruments from run.provider and store them.

    Records the outcome on `run` (see the module docstring) and returns it with `.result`. Raises
    IngestError, after recording the run as failed, for a selection that names nothing or a provider
    that cannot be used (an unknown universe, Tiingo without TIINGO_API_KEY).
    """
    from .services import StoreResult, store_bars

    errors = []
    try:
        if full and not start:
            raise IngestError("a full backfill needs a start date (--start)")
        requests, errors = _requests(symbols=symbols, universe=universe, exchange=exchange,
                                     asset_type=asset_type, as_of=end or now.date())
        if dormant_sessions is not None and exchange and not (symbols or universe):
            requests, dormant = _awake(requests, exchange=exchange, as_of=end or now.date(),
                                       sessions=dormant_sessions)
            if dormant:
                run.params = {**run.params, "dormant": dormant}
        targets = _targets(requests, start=start, end=end, full=full, now=now, errors=errors)
        try:
            provider = get_provider(run.provider)
        except ProviderError as exc:
            raise IngestError(str(exc)) from None
        bars, actions, outcomes = _fetch(provider, targets)
        stored = [t for t in targets if outcomes.get(t.request.key) and outcomes[t.request.key].status == "ok"]
        status, retry_at, notes = _judge(targets, outcomes, bars, errors, now)
        run.rows_read = len(bars)
        result = StoreResult()
        if status != IngestRun.Status.PROVIDER_ERROR and len(bars):
            result = _store(store_bars, bars, actions, stored, provider=run.provider, progress=progress)
    except Exception as exc:
        run.status = IngestRun.Status.FAILED
        run.errors = errors + [str(exc) or type(exc).__name__]
        run.finished_at = timezone.now()
        run.save()
        if isinstance(exc, DatabaseError):
            raise IngestError(f"the database refused the bars: {exc}") from exc
        raise
    run.status, run.retry_at, run.errors = status, retry_at, errors + notes
    run.symbols = result.symbols
    run.rows_inserted, run.rows_updated, run.rows_unchanged = result.inserted, result.updated, result.unchanged
    run.rows_flagged, run.rows_quarantined = result.flagged, result.quarantined
    run.finished_at = timezone.now()
    run.save()
    if status == IngestRun.Status.PROVIDER_ERROR:
        logger.error("ingest run #%s from %s: provider error, nothing written: %s", run.pk, run.provider,
                     "; ".join(run.errors[:5]))
    run.result = result
    return run


def _requests(*, symbols, universe, exchange, asset_type, as_of):
    """SymbolRequests with their last stored bar ({request: last date}), and messages for bad symbols."""
    errors = []
    if symbols:
        wanted = []
        for text in symbols:
            try:
                wanted.append(parse(text, exchange))
            except SymbolError as exc:
                errors.append(f"{str(text).strip() or text!r}: {exc}")
        stored = _stored(Instrument.objects.filter(symbol__in={r.symbol for r in wanted}))
        found = {}
        for request in wanted:
            matches = [inst for inst in stored
                       if inst.symbol == request.symbol and request.exchange in ("", inst.exchange)]
            if request.exchange == "" and len(matches) > 1:
                venues = ", ".join(sorted(inst.exchange for inst in matches))
                errors.append(f"{request.symbol}: listed on {venues}; say which, e.g. {matches[0].exchange}:"
                              f"{request.symbol}")
                continue
            if matches:
                inst = matches[0]
                key = SymbolRequest(inst.symbol, inst.exchange, inst.asset_type)
                found[key] = inst.last_date
            else:
                kind = request.asset_type or asset_type or AssetType.EQUITY
                venue = request.exchange or ("FX" if kind == AssetType.FX else DEFAULT_EXCHANGE)
                found[SymbolRequest(request.symbol, venue, kind)] = None
        return found, errors
    if universe:
        from . import universes

        try:
            members = universes.members(universe, as_of)
        except universes.UnknownUniverse as exc:
            raise IngestError(str(exc)) from None
        if exchange:
            members = members.filter(exchange=exchange)
    elif exchange:
        members = Instrument.objects.filter(exchange=exchange, active=True)
    else:
        raise IngestError("say what to fetch: symbols, a universe or an exchange")
    return {SymbolRequest(inst.symbol, inst.exchange, inst.asset_type): inst.last_date
            for inst in _stored(members)}, errors


def _awake(requests, *, exchange, as_of, sessions):
    """The requests whose last bar is within `sessions` sessions before `as_of`, and how many were left out.

    An instrument that stopped trading (a delisting we have no record of, a suspension) or never had a
    bar is not asked every day: "no data" from it would only repeat, and is never taken as a delisting.
    `ingest --symbols` still asks for it explicitly.
    """
    from . import calendars

    cutoff = calendars.sessions_before(exchange, as_of, sessions)
    awake = {request: last for request, last in requests.items() if last is not None and last >= cutoff}
    return awake, len(requests) - len(awake)


def _stored(instruments):
    return list(instruments.annotate(last_date=Max("bars__date")).order_by("symbol", "exchange"))


def _targets(requests, *, start, end, full, now, errors):
    """The instruments that lack sessions, with those sessions; the up-to-date ones are left out."""
    targets = []
    for request, last in requests.items():
        try:
            upto = end or _latest_closed(request.exchange, now)
        except ValueError as exc:
            errors.append(f"{request.symbol}: {exc}")
            continue
        if full or last is None:
            first = start
            if first is None:
                errors.append(f"{request.symbol}: no bars stored yet; give a start date to backfill from")
                continue
        else:
            first = max(last + dt.timedelta(days=1), start) if start else last + dt.timedelta(days=1)
        days = _sessions(request.exchange, first, upto)
        if days:
            targets.append(Target(request, last, days))
    return targets


def _latest_closed(exchange, now):
    if calendars.calendar_name(exchange) is None:
        # FX and other venue-less series: the last weekday that has ended in UTC.
        day = now.astimezone(dt.timezone.utc).date() - dt.timedelta(days=1)
        while day.weekday() >= 5:
            day -= dt.timedelta(days=1)
        return day
    return calendars.latest_closed_session(exchange, now)


def _sessions(exchange, first, last):
    if first > last:
        return []
    name = calendars.calendar_name(exchange)
    if name is None:
        return [d.date() for d in pd.bdate_range(first, last)]
    sessions = calendars.sessions(name)
    chosen = sessions[(sessions >= pd.Timestamp(first)) & (sessions <= pd.Timestamp(last))]
    return [d.date() for d in chosen]


def _fetch(provider, targets):
    """One provider batch per distinct window; bars kept only inside each instrument's own window."""
    windows = {}
    for target in targets:
        windows.setdefault((target.sessions[0], target.sessions[-1]), []).append(target)
    bars, actions, outcomes = [], [], {}
    for (first, last), batch in windows.items():
        fetched = provider.fetch([t.request for t in batch], start=first, end=last)
        outcomes.update(fetched.outcomes)
        got = fetched.bars
        days = np.asarray(got["date"], dtype="datetime64[D]")
        bars.append(got[(days >= np.datetime64(first)) & (days <= np.datetime64(last))])
        actions.append(fetched.actions)
    bars = pd.concat(bars, ignore_index=True) if bars else None
    actions = pd.concat(actions, ignore_index=True) if actions else None
    if bars is None:
        from .providers.base import empty_actions, empty_bars

        bars, actions = empty_bars(), empty_actions()
    return bars, actions, outcomes


def _judge(targets, outcomes, bars, errors, now):
    """(status, retry_at, messages) of a run from its per-symbol outcomes and the sessions received."""
    Status = IngestRun.Status
    notes, throttled, failed, retry_after = [], 0, 0, []
    received = {}
    if len(bars):
        frame = pd.DataFrame({"symbol": bars["symbol"].astype(str), "exchange": bars["exchange"].astype(str),
                              "date": np.asarray(bars["date"], dtype="datetime64[D]")})
        for (symbol, exchange), days in frame.groupby(["symbol", "exchange"])["date"]:
            received[(symbol, exchange)] = {d.date() for d in pd.DatetimeIndex(days)}
    for target in targets:
        outcome = outcomes.get(target.request.key)
        symbol = target.request.symbol
        if outcome is None:
            failed += 1
            notes.append(f"{symbol}: the provider gave no answer")
        elif outcome.status == "rate_limited":
            throttled += 1
            retry_after.append(outcome.retry_after)
            notes.append(f"{symbol}: {outcome.message}; nothing written, retry scheduled")
        elif outcome.status != "ok":
            failed += 1
            notes.append(f"{symbol}: {outcome.message}")
        else:
            missing = [d for d in target.sessions if d not in received.get(target.request.key, set())]
            if missing:
                listed = ", ".join(d.isoformat() for d in missing[:MISSING_LISTED])
                more = f" and {len(missing) - MISSING_LISTED} more" if len(missing) > MISSING_LISTED else ""
                notes.append(f"{symbol}: {len(missing)} of {len(target.sessions)} sessions missing from the "
                             f"answer ({listed}{more})")
    if throttled:
        wait = max((s for s in retry_after if s), default=None)
        return Status.RATE_LIMITED, now + (dt.timedelta(seconds=wait) if wait else RETRY_DELAY), notes
    every = bool(targets) and failed == len(targets)
    all_empty = every and all(outcomes.get(t.request.key) is not None and outcomes[t.request.key].status == "no_data"
                              for t in targets)
    if every and (len(targets) > 1 or not all_empty):
        reason = ("the whole batch came back empty at once" if all_empty
                  else f"every symbol failed (first: {notes[0]})" if notes else "every symbol failed")
        return Status.PROVIDER_ERROR, None, [f"provider error: {reason}; nothing written, no instrument "
                                             f"marked delisted", *notes]
    if notes or errors:
        return Status.PARTIAL, None, notes
    return Status.SUCCESS, None, notes


def _store(store_bars, bars, actions, stored, *, provider, progress):
    """store_bars once per asset type (it gives new instruments theirs); the results summed."""
    from .services import StoreResult

    kinds = {t.request.key: t.request.asset_type or AssetType.EQUITY for t in stored}
    keys = list(zip(bars["symbol"].astype(str), bars["exchange"].astype(str)))
    kind_of_row = np.array([kinds.get(k, AssetType.EQUITY) for k in keys], dtype=object)
    action_keys = list(zip(actions["symbol"].astype(str), actions["exchange"].astype(str)))
    total = StoreResult()
    for kind in dict.fromkeys(kind_of_row.tolist()):
        rows = bars[kind_of_row == kind].reset_index(drop=True)
        mine = actions[np.array([kinds.get(k) == kind for k in action_keys], dtype=bool)] if len(actions) else actions
        result = store_bars(bars=rows, source=provider, asset_type=kind, progress=progress,
                            actions=mine if len(mine) else None)
        # Every StoreResult field is a count or a tuple of messages: both add up.
        total = StoreResult(**{f.name: getattr(total, f.name) + getattr(result, f.name) for f in fields(StoreResult)})
    return total
