"""Market-data endpoints: instruments, daily prices, the latest bar and ingest runs."""
import datetime as dt
import math
from functools import lru_cache
from typing import Optional

from ninja import Query, Router
from ninja.errors import ValidationError
from ninja.pagination import PageNumberPagination, paginate

from quant.quality import describe_flags

from .models import IngestRun, Instrument, PriceBar, parse_symbol
from .schemas import (
    AmbiguousSymbol,
    IngestRunOut,
    InstrumentFilter,
    InstrumentOut,
    LatestOut,
    Message,
    PricesOut,
    ValidationErrorOut,
)

router = Router(tags=["data"])

MAX_PAGE_SIZE = 500
ERRORS = {401: Message, 403: Message, 422: ValidationErrorOut}
SYMBOL_ERRORS = {**ERRORS, 404: Message, 409: AmbiguousSymbol}
BAR_FIELDS = ("date", "open", "high", "low", "close", "volume", "adj_factor", "flags", "quarantined")


def resolve_instrument(text):
    """Instrument.objects.resolve, with the listings named when a bare symbol is ambiguous."""
    try:
        return Instrument.objects.resolve(text)
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
    return price * factor


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
):
    """Daily bars of one instrument (`AAPL`, `XASX:BHP`, `BHP.AX`), oldest first.

    `adjusted=true` multiplies open/high/low/close by `adj_factor` (volume is left as traded).
    Quarantined bars are left out unless `include_quarantined=true`. Omitted dates mean no bound.
    """
    check_range(start, end)
    instrument = resolve_instrument(symbol)
    bars = PriceBar.objects.filter(instrument=instrument).between(start, end)
    if not include_quarantined:
        bars = bars.clean()
    out = []
    for date, o, h, lo, c, volume, factor, flags, quarantined in bars.order_by("date").values_list(*BAR_FIELDS):
        scale = factor if adjusted else 1.0
        out.append({
            "date": date, "open": _scaled(o, scale), "high": _scaled(h, scale), "low": _scaled(lo, scale),
            "close": _scaled(c, scale), "volume": volume, "adj_factor": factor,
            "flags": flags, "flag_labels": flag_labels(flags), "quarantined": quarantined,
        })
    return {
        "symbol": instrument.symbol, "exchange": instrument.exchange, "currency": instrument.currency,
        "adjusted": adjusted, "start": start, "end": end, "bars": out,
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
            change=close - previous, change_pct=(close / previous - 1) * 100,
        )
    return latest


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
