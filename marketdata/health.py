"""What the data-health page shows: coverage and quality per exchange, session gaps, flagged bars to review.

Query shapes are chosen for a table of millions of bars: one GROUP BY instrument over the bars gives
coverage, stale instruments and missing sessions per exchange (missing = sessions in the instrument's
span - its bars on sessions, counted against the exchange calendar in numpy); the longest gaps are
listed only for the instruments missing the most; flagged bars are paginated.
"""
import numpy as np
import pandas as pd
from django import forms
from django.core.paginator import Paginator
from django.db.models import Count, F, Max, Min, Prefetch, Q

from quant.quality import FLAG_LABELS, NOT_A_SESSION, session_gaps, sessions_in_span

from . import calendars
from .models import BarCorrection, Exchange, Instrument, PriceBar

EXCHANGE_LABELS = dict(Exchange.choices)
FLAGGED_PAGE_SIZE = 50
GAP_INSTRUMENTS = 10  # instruments listed with their longest gap, most missing sessions first
RECENT_CORRECTIONS = 20


class FlaggedFilter(forms.Form):
    """The flagged-bars list's query string: ?reason=<bit>&exchange=XASX&quarantined=1&status=open."""

    STATUSES = [("open", "to review"), ("reviewed", "reviewed"), ("all", "all")]

    reason = forms.TypedChoiceField(choices=[("", "any reason")] + [(str(b), l) for b, l in FLAG_LABELS.items()],
                                    coerce=int, required=False, empty_value=None)
    exchange = forms.ChoiceField(choices=[("", "any exchange")] + list(Exchange.choices), required=False)
    quarantined = forms.BooleanField(required=False, label="quarantined only")
    status = forms.ChoiceField(choices=STATUSES, required=False)

    def filter(self, bars):
        data = self.cleaned_data
        if data.get("reason"):
            bars = bars.alias(reason_bit=F("flags").bitand(data["reason"])).filter(reason_bit__gt=0)
        if data.get("exchange"):
            bars = bars.filter(instrument__exchange=data["exchange"])
        if data.get("quarantined"):
            bars = bars.filter(quarantined=True)
        status = data.get("status") or "open"
        if status == "open":
            bars = bars.filter(reviewed=False)
        elif status == "reviewed":
            bars = bars.filter(reviewed=True)
        return bars


def exchange_rows():
    """One dict per exchange: coverage, stale and delisted instruments, flags by reason, missing sessions.

    Also returns the instruments with the most missing sessions, each with its longest gap.
    """
    per_instrument = _per_instrument()
    instruments = {pk: (exchange, active, symbol) for pk, exchange, active, symbol in
                   Instrument.objects.values_list("pk", "exchange", "active", "symbol")}
    frame = pd.DataFrame(per_instrument, columns=["instrument_id", "first", "last", "bars", "flagged",
                                                  "quarantined", "off"])
    frame["exchange"] = frame["instrument_id"].map(lambda pk: instruments[pk][0])
    frame["missing"] = 0
    for exchange, rows in frame.groupby("exchange").groups.items():
        name = calendars.calendar_name(exchange)
        if name is None:
            continue
        part = frame.loc[rows]
        span = sessions_in_span(pd.to_datetime(part["first"]), pd.to_datetime(part["last"]), calendars.sessions(name))
        frame.loc[rows, "missing"] = np.maximum(span - (part["bars"] - part["off"]).to_numpy(), 0)
    reasons = _reasons()
    out = []
    for exchange in sorted(set(frame["exchange"]) | {e for e, _, _ in instruments.values()}):
        part = frame[frame["exchange"] == exchange]
        latest = part["last"].max() if len(part) else None
        listed = [pk for pk, (e, _, _) in instruments.items() if e == exchange]
        active_ids = {pk for pk in listed if instruments[pk][1]}
        out.append({
            "exchange": exchange,
            "label": EXCHANGE_LABELS.get(exchange, exchange),
            "instruments": len(listed),
            "inactive": len(listed) - len(active_ids),
            "no_bars": len(listed) - len(part),
            "stale": int((part["instrument_id"].isin(active_ids) & (part["last"] < latest)).sum()) if len(part) else 0,
            "bars": int(part["bars"].sum()),
            "first_date": part["first"].min() if len(part) else None,
            "last_date": latest,
            "flagged_bars": int(part["flagged"].sum()),
            "quarantined_bars": int(part["quarantined"].sum()),
            "missing_sessions": int(part["missing"].sum()),
            "instruments_with_gaps": int((part["missing"] > 0).sum()),
            "reasons": reasons.get(exchange, []),
        })
    worst = frame[frame["missing"] > 0].sort_values(["missing", "instrument_id"], ascending=[False, True])
    return out, _longest_gaps(worst.head(GAP_INSTRUMENTS), instruments)


def _per_instrument():
    return list(
        PriceBar.objects.order_by()
        .alias(off_bit=F("flags").bitand(NOT_A_SESSION))
        .values_list("instrument_id")
        .annotate(first=Min("date"), last=Max("date"), bars=Count("id"),
                  flagged=Count("id", filter=~Q(flags=0)), quarantined_bars=Count("id", filter=Q(quarantined=True)),
                  off=Count("id", filter=Q(off_bit__gt=0)))
    )


def _reasons():
    """{exchange: [{label, bars, quarantined}]} for each reason some bar of the exchange carries."""
    tally = {}
    for exchange, flags, n, quarantined in PriceBar.objects.flag_counts_by_exchange():
        by_reason = tally.setdefault(exchange, {bit: [0, 0] for bit in FLAG_LABELS})
        for bit in FLAG_LABELS:
            if flags & bit:
                by_reason[bit][0] += n
                by_reason[bit][1] += quarantined
    return {exchange: [{"bit": bit, "label": FLAG_LABELS[bit], "bars": n, "quarantined": q}
                       for bit, (n, q) in by_reason.items() if n]
            for exchange, by_reason in tally.items()}


def _longest_gaps(worst, instruments):
    """[{key, symbol, exchange, missing, gaps, start, end, sessions}] with each instrument's longest gap."""
    if not len(worst):
        return []
    ids = worst["instrument_id"].tolist()
    dates = pd.DataFrame(PriceBar.objects.filter(instrument_id__in=ids).order_by().values_list("instrument_id", "date"),
                         columns=["key", "date"])
    dates["date"] = pd.to_datetime(dates["date"])
    rows = []
    for row in worst.itertuples():
        exchange, _, symbol = instruments[row.instrument_id]
        gaps = session_gaps(dates[dates["key"] == row.instrument_id], calendars.sessions(calendars.calendar_name(exchange)))
        longest = gaps.sort_values(["sessions", "start"], ascending=[False, True]).iloc[0] if len(gaps) else None
        rows.append({
            "key": f"{exchange}:{symbol}", "missing": int(row.missing), "gaps": len(gaps),
            "start": None if longest is None else longest["start"].date(),
            "end": None if longest is None else longest["end"].date(),
            "sessions": None if longest is None else int(longest["sessions"]),
        })
    return rows


def flagged_page(params):
    """(FlaggedFilter, page of flagged bars with their corrections) for the query string `params`."""
    form = FlaggedFilter(params)
    bars = PriceBar.objects.flagged().select_related("instrument").prefetch_related(
        Prefetch("corrections", queryset=BarCorrection.objects.select_related("changed_by").order_by("changed_at", "id")))
    if form.is_valid():
        bars = form.filter(bars)
    else:
        bars = bars.filter(reviewed=False)
    # Quarantined (serious) bars first, so a stale run of small caps never buries a unit flip or a reused code.
    page = Paginator(bars.order_by("-quarantined", "-date", "instrument__symbol", "id"), FLAGGED_PAGE_SIZE).get_page(
        params.get("page"))
    return form, page


def recent_corrections():
    return (BarCorrection.objects.select_related("instrument", "changed_by")
            .order_by("-changed_at", "-id")[:RECENT_CORRECTIONS])
