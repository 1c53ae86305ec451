"""Market-data pages: overview, instrument list and chart, data coverage.

pandas and plotly (charts, health) are imported by the views that draw with them, not by this module:
resolving the URLconf must stay cheap for every web request of a fresh Lambda container (cold start).
"""
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max, Min, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe

from . import review
from .freshness import HEALTH_KEY, cached, coverage, freshness
from .models import CorporateAction, Exchange, IngestRun, Instrument, PriceBar, parse_symbol
from .symbology import SymbolError

EXCHANGE_LABELS = dict(Exchange.choices)
SAMPLE_COMMAND = "python manage.py ingest --provider sample"
LIST_PAGE_SIZE = 50
FLAGGED_ON_DETAIL = 100
ACTIONS_ON_DETAIL = 100
# (label, months back from the last bar); None = all data.
RANGES = (("6M", 6), ("1Y", 12), ("2Y", 24), ("5Y", 60), ("All", None))
DEFAULT_MONTHS = 24


def overview(request):
    """What market data is loaded, how fresh it is per exchange, and the latest ingest runs."""
    now = timezone.now()
    instruments = dict(Instrument.objects.order_by().values_list("exchange").annotate(n=Count("id")))
    rows = coverage()
    exchanges = []
    for row in rows:
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
    except Instrument.DoesNotExist as exc:
        try:
            bare, exchange = parse_symbol(symbol)
        except SymbolError:
            bare, exchange = symbol, None
        return render(request, "marketdata/instrument_not_found.html",
                      {"symbol": symbol, "bare": bare, "exchange": exchange, "reason": str(exc)}, status=404)

    from . import charts

    form = ChartForm(request.GET)
    valid = form.is_valid()
    options = form.cleaned_data
    adjusted = bool(options.get("adjusted"))
    with_quarantined = bool(options.get("quarantined"))
    bars = instrument.bars.all()
    # Every action in one query, newest first: a few per year, for the table and the chart markers.
    actions = list(instrument.actions.order_by("-ex_date").values_list(*charts.ACTION_COLUMNS, "source"))
    span = bars.aggregate(
        first=Min("date"), last=Max("date"), count=Count("id"),
        flagged_bars=Count("id", filter=~Q(flags=0)), quarantined_bars=Count("id", filter=Q(quarantined=True)),
        factored_bars=Count("id", filter=~Q(adj_factor=1.0)),
    )
    context = {
        "instrument": instrument,
        "form": form,
        "adjusted": adjusted,
        "with_quarantined": with_quarantined,
        "span": span,
        "sample_command": SAMPLE_COMMAND,
        "actions": _actions_table(actions),
        "reused_on": PriceBar.objects.reused_codes(instrument.exchange, [instrument.pk]).get(instrument.pk),
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
        marked = charts.actions_frame(row[:4] for row in actions if start <= row[0] <= end)
        mode = "adjusted" if adjusted else "raw"
        figure = charts.price_figure(frame, adjusted=adjusted, title=f"{instrument.symbol} ({instrument.exchange}), {mode}",
                                     visible_from=start, actions=marked)
        context.update({
            "start": start,
            "end": end,
            "shown_bars": len(shown),
            # figure_json escapes <, > and &, so the JSON cannot close its <script> element.
            "chart_json": mark_safe(charts.figure_json(figure)),
            "ranges": _range_links(span, start, end),
            "latest": _latest(bars, adjusted=adjusted),
            "flagged": bars.flagged().order_by("-quarantined", "-date")[:FLAGGED_ON_DETAIL],
        })
    return render(request, "marketdata/instrument_detail.html", context, status=400 if form.errors else 200)


def data_health(request):
    """Coverage and quality per exchange, missing-session gaps, flagged bars to review, recent corrections."""
    from . import health

    # Tallies over every bar (about 1 s on SQLite with 2.5 M bars): a minute old at most, fresh after
    # every ingest, daily run and review.
    exchanges, gaps = cached(HEALTH_KEY, health.exchange_rows)
    form, page = health.flagged_page(request.GET)
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "marketdata/data_health.html", {
        "exchanges": exchanges,
        "gaps": gaps,
        "gap_limit": health.GAP_INSTRUMENTS,
        "filter": form,
        "page": page,
        "flagged": page.object_list,
        "query": query.urlencode(),
        "corrections": health.recent_corrections(),
        "sample_command": SAMPLE_COMMAND,
    }, status=400 if form.errors else 200)


class FixForm(forms.Form):
    """The values a reviewer types to fix a bar; empty fields are left as they are."""

    open = forms.FloatField(required=False)
    high = forms.FloatField(required=False)
    low = forms.FloatField(required=False)
    close = forms.FloatField(required=False)
    volume = forms.IntegerField(required=False, min_value=0)


def bar_review(request, pk):
    """One bar: its values, reasons and correction history; staff accept, fix or drop it here (POST).

    A POST from someone who is not staff is refused with 403; a refused review (bad value) shows the
    page again with the message, status 400.
    """
    bar = get_object_or_404(PriceBar.objects.select_related("instrument"), pk=pk)
    error = None
    fix = FixForm()
    if request.method == "POST":
        if not request.user.is_staff:
            raise PermissionDenied("Only staff review bars.")
        action = request.POST.get("action")
        reason = request.POST.get("reason", "")
        try:
            if action == "accept":
                review.accept_bar(bar, user=request.user, reason=reason)
            elif action == "drop":
                review.drop_bar(bar, user=request.user, reason=reason)
                messages.success(request, f"{bar.instrument.key} {bar.date:%Y-%m-%d} dropped.")
                return redirect("marketdata:data_health")
            elif action == "fix":
                fix = FixForm(request.POST)
                if not fix.is_valid():
                    field, problems = next(iter(fix.errors.items()))
                    raise review.ReviewError(" ".join(problems), field=field)
                values = {name: value for name, value in fix.cleaned_data.items() if value is not None}
                review.fix_bar(bar, user=request.user, reason=reason, **values)
            else:
                raise review.ReviewError(f"{action!r} is not one of accept, fix, drop", field="action")
        except review.ReviewError as exc:
            error = str(exc)
        else:
            messages.success(request, f"{bar.instrument.key} {bar.date:%Y-%m-%d}: {action} recorded.")
            return redirect("marketdata:bar_review", pk=bar.pk)
        bar.refresh_from_db()
    history = bar.corrections.select_related("changed_by").order_by("changed_at", "id")
    return render(request, "marketdata/bar_review.html", {
        "bar": bar, "history": history, "fix": fix, "error": error,
    }, status=400 if error else 200)


def _actions_table(actions):
    """The latest ACTIONS_ON_DETAIL of (ex_date, kind, ratio, amount, source) rows, labelled as on the chart."""
    from . import charts

    kinds = dict(CorporateAction.Kind.choices)
    rows = [{"ex_date": ex_date, "kind": kinds.get(kind, kind), "source": source,
             "label": charts.action_label(kind, ratio, None if amount is None else float(amount))}
            for ex_date, kind, ratio, amount, source in actions[:ACTIONS_ON_DETAIL]]
    return {"rows": rows, "count": len(actions)}


def _months_before(day, months):
    import pandas as pd  # only the instrument page gets here, and it has loaded pandas for its chart

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


def run_list(request):
    """Every ingest and daily run, newest first, 50 a page."""
    IngestRun.objects.close_interrupted()  # a run whose process was killed says so, not "running"
    page = Paginator(IngestRun.objects.select_related("requested_by").order_by("-started_at", "-id"),
                     LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "marketdata/ingestrun_list.html", {"page": page, "runs": page.object_list})


def run_detail(request, run_id):
    """One run: its counts and errors, and for a daily run each step with its time and what it did."""
    run = get_object_or_404(IngestRun.objects.select_related("requested_by"), pk=run_id)
    return render(request, "marketdata/ingestrun_detail.html", {"run": run})
