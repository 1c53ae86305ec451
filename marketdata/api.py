"""Market-data endpoints: instruments, daily prices, the latest bar, universes and ingest runs."""
import datetime as dt
import math
from functools import lru_cache
from typing import Literal, Optional

from django.db import transaction
from django.utils import timezone
from ninja import Query, Router, Status
from ninja.errors import AuthorizationError, ValidationError
from ninja.pagination import paginate

from parakeet.pagination import PageNumberPagination
from quant.flags import describe_flags

from . import symbols
from .models import IngestRun, Instrument, PriceBar, parse_symbol
from .schemas import (
    AmbiguousSymbol,
    IngestRunOut,
    InstrumentFilter,
    InstrumentOut,
    LatestOut,
    Message,
    PricesOut,
    RefreshIn,
    RefreshOut,
    UniverseOut,
    ValidationErrorOut,
)

router = Router(tags=["data"])

MAX_PAGE_SIZE = 500
ERRORS = {401: Message, 403: Message, 422: ValidationErrorOut}
SYMBOL_ERRORS = {**ERRORS, 404: Message, 409: AmbiguousSymbol}
BAR_FIELDS = ("date", "open", "high", "low", "close", "volume", "adj_factor", "flags", "quarantined")


def resolve_instrument(text, instruments=None):
    """`instruments`.resolve (default all), with the listings named when a bare symbol is ambiguous."""
    try:
        return (Instrument.objects.all() if instruments is None else instruments).resolve(text)
    except Instrument.MultipleObjectsReturned as exc:
        symbol, _ = parse_symbol(text)
        keys = [f"{exchange}:{symbol}" for exchange in
                Instrument.objects.filter(symbol=symbol).order_by("exchange").values_list("exchange", flat=True)]
        error = Instrument.MultipleObjectsReturned(
            f"symbol {symbol!r} is listed on {', '.join(keys)}; ask for one of them, e.g. {keys[0]}"
        )
        error.candidates = keys
        raise error from exc


def check_range(start, end):
    if start and end and start > end:
        raise ValidationError([{
            "type": "value_error", "loc": ["query", "start"],
            "msg": f"start {start.isoformat()} is after end {end.isoformat()}",
        }])


@lru_cache(maxsize=64)
def flag_labels(flags):
    return describe_flags(flags)


def _scaled(price, factor):
    # PostgreSQL float columns can hold NaN/Infinity, which JSON cannot: a price like that is missing.
    if price is None or not math.isfinite(price):
        return None
    return price if factor == 1.0 else _tidy(price * factor)


def _weekly(bars):
    """Daily bar dicts as weekly ones (quant.bars.weekly_bars), in the same shape."""
    import pandas as pd

    from quant.bars import weekly_bars

    if not bars:
        return []
    weeks = weekly_bars(pd.DataFrame(bars).astype({c: "float64" for c in ("open", "high", "low", "close", "volume")}))
    return [{
        "date": row.date.date(), **{c: _scaled(getattr(row, c), 1.0) for c in ("open", "high", "low", "close")},
        "volume": None if pd.isna(row.volume) else int(row.volume), "adj_factor": row.adj_factor,
        "flags": row.flags, "flag_labels": flag_labels(row.flags), "quarantined": bool(row.quarantined),
    } for row in weeks.itertuples()]


def _tidy(value):
    """A derived price to 10 significant digits: 441.40000000000515 (float noise of a factor ratio) -> 441.4."""
    return float(f"{value:.10g}")


@router.get("/instruments", response={200: list[InstrumentOut], **ERRORS})
@paginate(PageNumberPagination, max_page_size=MAX_PAGE_SIZE)
def list_instruments(request, filters: InstrumentFilter = Query(...)):
    """Instruments ordered by symbol then exchange; `q` matches symbol or name (case-insensitive)."""
    return filters.filter(Instrument.objects.order_by("symbol", "exchange"))


@router.get("/prices/{symbol}", response={200: PricesOut, **SYMBOL_ERRORS})
def get_prices(
    request,
    symbol: str,
    start: Optional[dt.date] = None,
    end: Optional[dt.date] = None,
    adjusted: bool = False,
    include_quarantined: bool = False,
    stitch: bool = False,
    interval: Literal["daily", "weekly"] = "daily",
):
    """Daily bars of one instrument (`AAPL`, `XASX:BHP`, `BHP.AX`), oldest first.

    `adjusted=true` multiplies open/high/low/close by `adj_factor` (volume is left as traded).
    Quarantined bars are left out unless `include_quarantined=true`. Omitted dates mean no bound.
    A listing that changed code says so in `renamed_from`; `stitch=true` then takes the bars before each
    change from the older code (its factors carried onto the newer code's basis).
    `interval=weekly` gives one bar per calendar week that has one, dated by its last session: open the
    first, high the max, low the min, close the last, volume the sum, adj_factor the last day's.
    """
    check_range(start, end)
    instrument = resolve_instrument(symbol, Instrument.objects.with_renamed_on())
    chain = symbols.rename_chain(instrument) if instrument.renamed_on else []
    if stitch and chain:
        rows, _ = symbols.stitched_bars(instrument, fields=BAR_FIELDS, start=start, end=end,
                                        include_quarantined=include_quarantined, chain=chain)
    else:
        bars = PriceBar.objects.filter(instrument=instrument).between(start, end)
        if not include_quarantined:
            bars = bars.clean()
        rows = bars.order_by("date").values_list(*BAR_FIELDS)
    out = []
    for date, o, h, lo, c, volume, factor, flags, quarantined in rows:
        scale = factor if adjusted else 1.0
        out.append({
            "date": date, "open": _scaled(o, scale), "high": _scaled(h, scale), "low": _scaled(lo, scale),
            "close": _scaled(c, scale), "volume": volume, "adj_factor": factor,
            "flags": flags, "flag_labels": flag_labels(flags), "quarantined": quarantined,
        })
    if interval == "weekly":
        out = _weekly(out)
    return {
        "symbol": instrument.symbol, "exchange": instrument.exchange, "currency": instrument.currency,
        "adjusted": adjusted, "start": start, "end": end, "interval": interval,
        "renamed_from": symbols.renamed_from(instrument, chain), "stitched": bool(stitch and chain), "bars": out,
    }


@router.get("/latest/{symbol}", response={200: LatestOut, **SYMBOL_ERRORS})
def get_latest(request, symbol: str):
    """The latest usable (not quarantined) bar and its change from the previous usable close."""
    instrument = resolve_instrument(symbol)
    rows = list(
        PriceBar.objects.clean().filter(instrument=instrument, close__isnull=False)
        .order_by("-date").values_list(*BAR_FIELDS[:-1])[:2]
    )
    if not rows:
        raise PriceBar.DoesNotExist(f"no usable bars for {instrument.key}")
    date, o, h, lo, close, volume, factor, flags = rows[0]
    latest = {
        "symbol": instrument.symbol, "exchange": instrument.exchange, "currency": instrument.currency,
        "date": date, "open": _scaled(o, 1.0), "high": _scaled(h, 1.0), "low": _scaled(lo, 1.0),
        "close": close, "volume": volume, "flags": flags,
        "previous_date": None, "previous_close": None, "change": None, "change_pct": None,
    }
    if len(rows) == 2:
        previous_date, previous_close, previous_factor = rows[1][0], rows[1][4], rows[1][6]
        # Restate on today's share basis: across a 2:1 split yesterday's 200 is today's 100.
        previous = _scaled(previous_close, previous_factor / factor) if factor else None
        if not previous:  # nothing to compare with; never divide by a missing or zero close
            return latest
        latest.update(
            previous_date=previous_date, previous_close=previous,
            change=_tidy(close - previous), change_pct=_tidy((close / previous - 1) * 100),
        )
    return latest


@router.get("/universes/{code}", response={200: UniverseOut, **ERRORS, 404: Message})
def get_universe(request, code: str, as_of: Optional[dt.date] = None):
    """Members of universe `code` (SP500, ASX300) on `as_of` (default today), delisted names included."""
    from . import universes  # its file readers need pandas; this request does not load them until here

    as_of = as_of or timezone.localdate()
    code = code.strip().upper()
    rows = universes.members(code, as_of).order_by("symbol", "exchange").values_list(
        "symbol", "exchange", "name", "active")
    members = [{"key": f"{exchange}:{symbol}", "symbol": symbol, "exchange": exchange, "name": name,
                "active": active} for symbol, exchange, name, active in rows]
    return {"code": code, "as_of": as_of, "count": len(members), "members": members}


@router.get("/runs", response={200: list[IngestRunOut], **ERRORS})
@paginate(PageNumberPagination, max_page_size=MAX_PAGE_SIZE)
def list_runs(request):
    """Ingest runs, newest first."""
    return IngestRun.objects.select_related("requested_by").order_by("-started_at", "-id")


@router.get("/runs/{run_id}", response={200: IngestRunOut, **ERRORS, 404: Message})
def get_run(request, run_id: int):
    run = IngestRun.objects.select_related("requested_by").filter(pk=run_id).first()
    if run is None:
        raise IngestRun.DoesNotExist(f"no ingest run with id {run_id}")
    return run


@router.post("/refresh", response={202: RefreshOut, **ERRORS, 503: Message})
def refresh_data(request, payload: RefreshIn = None):
    """Start the daily chain for `exchange` (default XASX and XNYS) and `session` (default the latest closed).

    Answers 202 with the runs at once; the work is enqueued when the request's transaction commits
    (in-process when no Celery broker is configured, so the runs may already be finished). Needs a
    read_write token or a staff login. A broker that cannot be reached: 503, and the runs end failed
    saying that nothing ran.
    """
    # The daily chain needs the exchange calendars (pandas): loaded by this request, not at import (cold start).
    from . import daily

    if getattr(request, "api_token", None) is None and not request.user.is_staff:
        raise AuthorizationError(message="starting a data refresh needs a read_write API token or a staff login")
    payload = payload or RefreshIn()
    exchanges = [payload.exchange] if payload.exchange else list(daily.EXCHANGES)
    try:
        sessions = {exchange: daily.resolve_session(exchange, payload.session) for exchange in exchanges}
    except daily.DailyError as exc:
        raise ValidationError([{"type": "value_error", "loc": ["body", "payload", "session"], "msg": str(exc)}])
    runs = [daily.start_daily(exchange=exchange, session=sessions[exchange], requested_by=request.user, trigger="api")
            for exchange in exchanges]
    refused = []
    for run in runs:
        # robust: any other failure to start is logged; the run row still says it never finished.
        transaction.on_commit(lambda run=run: daily.enqueue_daily(run) or refused.append(run), robust=True)
    if refused:  # known here when the request commits as it goes (autocommit, the default)
        return Status(503, {"detail": IngestRun.objects.get(pk=refused[0].pk).errors[0]})
    return Status(202, {"runs": IngestRun.objects.select_related("requested_by").filter(pk__in=[r.pk for r in runs])
                        .order_by("exchange")})
