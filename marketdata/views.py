"""Market-data pages: overview, instrument list and chart, data coverage."""
import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd
from django import forms
from django.core.paginator import Paginator
from django.db.models import Count, Max, Min, Q
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe

from quant.quality import FLAG_LABELS

from . import charts
from .models import CALENDAR_OF, Exchange, IngestRun, Instrument, PriceBar, parse_symbol

EXCHANGE_LABELS = dict(Exchange.choices)
SAMPLE_COMMAND = "python manage.py ingest --provider sample"
LIST_PAGE_SIZE = 50
FLAGGED_ON_DETAIL = 100
RECENT_FLAGGED = 50
# (label, months back from the last bar); None = all data.
RANGES = (("6M", 6), ("1Y", 12), ("2Y", 24), ("5Y", 60), ("All", None))
DEFAULT_MONTHS = 24


def overview(request):
    """What market data is loaded, how fresh it is per exchange, and the latest ingest runs."""
    now = timezone.now()
    instruments = dict(Instrument.objects.order_by().values_list("exchange").annotate(n=Count("id")))
    coverage = list(PriceBar.objects.coverage_by_exchange())
    exchanges = []
    for row in coverage:
        exchange = row["exchange"]
        exchanges.append({
            **row,
            "label": EXCHANGE_LABELS.get(exchange, exchange),
            "instruments": instruments.get(exchange, 0),
            "freshness": freshness(exchange, row["last_date"], now),
        })
    covered = {row["exchange"] for row in exchanges}
    without_bars = [
        {"exchange": exchange, "label": EXCHANGE_LABELS.get(exchange, exchange), "instruments": n}
        for exchange, n in sorted(instruments.items()) if exchange not in covered
    ]
    totals = {
        "instruments": sum(instruments.values()),
        "bars": sum(row["bars"] for row in exchanges),
        "flagged": sum(row["flagged_bars"] for row in exchanges),
        "quarantined": sum(row["quarantined_bars"] for row in exchanges),
        "first_date": min((row["first_date"] for row in exchanges), default=None),
        "last_date": max((row["last_date"] for row in exchanges), default=None),
    }
    return render(request, "marketdata/overview.html", {
        "exchanges": exchanges,
        "without_bars": without_bars,
        "totals": totals,
        "stale": [row for row in exchanges if row["freshness"]["status"] == "stale"],
        "runs": IngestRun.objects.select_related("requested_by")[:10],
        "today": now.date(),
        "sample_command": SAMPLE_COMMAND,
    })


def instrument_list(request):
    """Instruments with their bar coverage; search by symbol or name, filter by exchange, 50 a page."""
    q = request.GET.get("q", "").strip()
    exchange = request.GET.get("exchange", "").strip().upper()
    errors = []
    found = Instrument.objects.search(q)
    if exchange and exchange not in EXCHANGE_LABELS:
        errors.append(f"exchange: {exchange!r} is not an exchange; choose one of {', '.join(EXCHANGE_LABELS)}.")
    elif exchange:
        found = found.filter(exchange=exchange)
    # Paginate bare ids, then aggregate bars for this page only: the coverage GROUP BY never runs
    # over the whole table, so the page costs the same with 30 or 3,000 instruments.
    page = Paginator(found.order_by("symbol", "exchange").values_list("pk", flat=True), LIST_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = list(Instrument.objects.filter(pk__in=list(page)).with_coverage().order_by("symbol", "exchange"))
    return render(request, "marketdata/instrument_list.html", {
        "page": page,
        "instruments": rows,
        "q": q,
        "exchange": exchange,
        "exchanges": Exchange.choices,
        "errors": errors,
    }, status=400 if errors else 200)


class ChartForm(forms.Form):
    """The query string of the instrument page: ?start=&end=&adjusted=1&quarantined=1."""

    YES_NO = [("1", "yes"), ("0", "no"), ("true", "yes"), ("false", "no")]

    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    adjusted = forms.TypedChoiceField(choices=YES_NO, coerce=lambda v: v in ("1", "true"), required=False, empty_value=False)
    quarantined = forms.TypedChoiceField(choices=YES_NO, coerce=lambda v: v in ("1", "true"), required=False, empty_value=False)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            self.add_error("end", f"end {data['end']} is before start {data['start']}.")
        return data


def instrument_detail(request, symbol):
    """One instrument: latest bar, candlestick chart with moving averages, and its flagged bars."""
    try:
        instrument = Instrument.objects.resolve(symbol)
    except Instrument.MultipleObjectsReturned:
        bare, _ = parse_symbol(symbol)
        candidates = Instrument.objects.filter(symbol=bare).with_coverage().order_by("exchange")
        return render(request, "marketdata/instrument_ambiguous.html", {"symbol": bare, "candidates": candidates})
    except Instrument.DoesNotExist:
        bare, exchange = parse_symbol(symbol)
        return render(request, "marketdata/instrument_not_found.html",
                      {"symbol": symbol, "bare": bare, "exchange": exchange}, status=404)

    form = ChartForm(request.GET)
    valid = form.is_valid()
    options = form.cleaned_data
    adjusted = bool(options.get("adjusted"))
    with_quarantined = bool(options.get("quarantined"))
    bars = instrument.bars.all()
    span = bars.aggregate(
        first=Min("date"), last=Max("date"), count=Count("id"),
        flagged_bars=Count("id", filter=~Q(flags=0)), quarantined_bars=Count("id", filter=Q(quarantined=True)),
    )
    context = {
        "instrument": instrument,
        "form": form,
        "adjusted": adjusted,
        "with_quarantined": with_quarantined,
        "span": span,
        "sample_command": SAMPLE_COMMAND,
    }
    if span["count"]:
        # After any error the page says it shows the default range, so half a bad range is not used.
        end = (valid and options.get("end")) or span["last"]
        start = (valid and options.get("start")) or _months_before(end, DEFAULT_MONTHS)
        plotted = bars if with_quarantined else bars.clean()
        # The 200-bar average needs the bars before `start`; they warm it up but are not drawn.
        warmup = plotted.filter(date__lt=start).order_by("-date").values_list(*charts.BAR_COLUMNS)[: max(charts.MOVING_AVERAGES) - 1]
        shown = list(plotted.between(start, end).order_by("date").values_list(*charts.BAR_COLUMNS))
        frame = charts.bars_frame([*reversed(warmup), *shown])
        mode = "adjusted" if adjusted else "raw"
        figure = charts.price_figure(frame, adjusted=adjusted, title=f"{instrument.symbol} ({instrument.exchange}), {mode}",
                                     visible_from=start)
        context.update({
            "start": start,
            "end": end,
            "shown_bars": len(shown),
            # figure_json escapes <, > and &, so the JSON cannot close its <script> element.
            "chart_json": mark_safe(charts.figure_json(figure)),
            "ranges": _range_links(span, start, end),
            "latest": _latest(bars, adjusted=adjusted),
            "flagged": bars.flagged().order_by("-date")[:FLAGGED_ON_DETAIL],
        })
    return render(request, "marketdata/instrument_detail.html", context, status=400 if form.errors else 200)


def data_health(request):
    """Coverage and quality per exchange: stale instruments, flagged bars by reason, recent flags."""
    coverage = {row["exchange"]: row for row in PriceBar.objects.coverage_by_exchange()}
    latest_of = {exchange: row["last_date"] for exchange, row in coverage.items()}
    counts = {}
    for exchange, active, last_date in Instrument.objects.with_last_bar().values_list("exchange", "active", "last_date"):
        tally = counts.setdefault(exchange, {"instruments": 0, "no_bars": 0, "stale": 0, "inactive": 0})
        tally["instruments"] += 1
        tally["inactive"] += not active
        if last_date is None:
            tally["no_bars"] += 1
        elif active and last_date < latest_of[exchange]:
            tally["stale"] += 1
    reasons = {}
    for exchange, flags, n, quarantined in PriceBar.objects.flag_counts_by_exchange():
        by_reason = reasons.setdefault(exchange, {bit: [0, 0] for bit in FLAG_LABELS})
        for bit in FLAG_LABELS:
            if flags & bit:
                by_reason[bit][0] += n
                by_reason[bit][1] += quarantined
    exchanges = []
    for exchange in sorted(set(coverage) | set(counts)):
        empty = {"bars": 0, "first_date": None, "last_date": None, "flagged_bars": 0, "quarantined_bars": 0}
        exchanges.append({
            "exchange": exchange,
            "label": EXCHANGE_LABELS.get(exchange, exchange),
            **coverage.get(exchange, empty),
            **counts.get(exchange, {"instruments": 0, "no_bars": 0, "stale": 0, "inactive": 0}),
            "reasons": [
                {"label": FLAG_LABELS[bit], "bars": n, "quarantined": q}
                for bit, (n, q) in reasons.get(exchange, {}).items() if n
            ],
        })
    recent = PriceBar.objects.flagged().select_related("instrument").order_by("-date", "instrument__symbol")[:RECENT_FLAGGED]
    return render(request, "marketdata/data_health.html", {
        "exchanges": exchanges,
        "recent_flagged": recent,
        "recent_limit": RECENT_FLAGGED,
        "sample_command": SAMPLE_COMMAND,
    })


def freshness(exchange, last_date, now):
    """How many of the exchange's sessions closed after `last_date` and before `now`, with a status.

    0 sessions is "current", 1 is "behind" (the latest close may simply not be ingested yet), 2 or more
    is "stale". Venues without a calendar (FX) count weekdays instead.
    """
    behind = _sessions_behind(exchange, last_date, now)
    status = "current" if behind == 0 else "behind" if behind == 1 else "stale"
    return {"sessions_behind": behind, "days_ago": (now.date() - last_date).days, "status": status}


def _sessions_behind(exchange, last_date, now):
    calendar = _calendar(CALENDAR_OF.get(exchange))
    if calendar is not None:
        try:
            last_closed = calendar.minute_to_past_session(pd.Timestamp(now).floor("min")).date()
            start = max(last_date + dt.timedelta(days=1), calendar.first_session.date())
            if start > last_closed:
                return 0
            return len(calendar.sessions_in_range(start, last_closed))
        except ValueError:
            pass  # `now` outside the calendar's bounds: fall back to weekdays
    # Weekdays strictly after the last bar and before today (today's bar is not due until its close).
    return max(int(np.busday_count(last_date + dt.timedelta(days=1), now.date())), 0)


@lru_cache(maxsize=None)
def _calendar(name):
    if name is None:
        return None
    import exchange_calendars

    return exchange_calendars.get_calendar(name)


def _months_before(day, months):
    return (pd.Timestamp(day) - pd.DateOffset(months=months)).date()


def _range_links(span, start, end):
    """The 6M/1Y/2Y/5Y/All buttons, counted back from the last bar; the first one matching the shown range is active."""
    links, matched = [], False
    for label, months in RANGES:
        begin = span["first"] if months is None else max(_months_before(span["last"], months), span["first"])
        # A button clipped to the first bar also stands for any start before it.
        same_start = start <= begin if begin == span["first"] else start == begin
        active = not matched and end == span["last"] and same_start
        matched = matched or active
        links.append({"label": label, "start": begin.isoformat(), "active": active})
    return links


def _latest(bars, *, adjusted):
    """The latest usable bar (not quarantined, has a close) and its change from the one before."""
    last_two = list(bars.clean().filter(close__isnull=False).order_by("-date").values_list("date", "close", "volume", "adj_factor")[:2])
    if not last_two:
        return None
    date, close, volume, factor = last_two[0]
    close = close * factor if adjusted else close
    # Sub-dollar ASX prices trade in tenths of a cent: two decimals would show 0.06 and +0.00.
    latest = {"date": date, "close": close, "volume": volume, "change": None, "change_pct": None,
              "decimals": 2 if abs(close) >= 1 else 4}
    if len(last_two) == 2:
        _, before, _, before_factor = last_two[1]
        before = before * before_factor if adjusted else before
        latest.update(change=close - before, change_pct=(close / before - 1) * 100, previous_date=last_two[1][0])
    return latest
