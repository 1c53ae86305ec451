"""Reviewing flagged bars: accept as is, fix by hand, or drop; every step leaves a BarCorrection.

A correction never silently overwrites: each one keeps the bar's values before and after, who made it
and when. Accepted and fixed bars are `reviewed` (ingests leave their values alone, bulk.upsert_bars)
and out of quarantine; a dropped bar is deleted, its corrections survive it (bar -> NULL), and the next
ingest of the same file does not insert it again (bulk._dropped).
"""
import math

from django.db import transaction

from quant.flags import OHLC_INCONSISTENT, ZERO_PRICE

from . import freshness
from .models import BarCorrection, PriceBar

SNAPSHOT_FIELDS = ("open", "high", "low", "close", "volume", "adj_factor", "flags", "quarantined", "reviewed")
FIXABLE = ("open", "high", "low", "close", "volume", "adj_factor")


class ReviewError(ValueError):
    """A review that cannot be applied; the message names the field and the problem."""

    def __init__(self, problem, *, field=None):
        self.field = field
        super().__init__(f"{field}: {problem}" if field else problem)


def snapshot(bar):
    """The reviewable values of a bar, as stored in BarCorrection.old_values / new_values."""
    return {name: getattr(bar, name) for name in SNAPSHOT_FIELDS}


def accept_bar(bar: PriceBar, *, user, reason: str) -> BarCorrection:
    """Accept a flagged bar as received: reviewed, out of quarantine, flags kept as its record."""
    with transaction.atomic():
        bar = _locked(bar)
        old = snapshot(bar)
        bar.reviewed, bar.quarantined = True, False
        bar.save(update_fields=["reviewed", "quarantined", "updated_at"])
        return _record(bar, BarCorrection.Action.ACCEPT, old, snapshot(bar), user=user, reason=reason)


def fix_bar(bar: PriceBar, *, user, reason: str, **values) -> BarCorrection:
    """Set some of open/high/low/close/volume/adj_factor by hand: reviewed, out of quarantine.

    Raises ReviewError naming the field for an unknown field, a value that is not a positive number
    (volume: a whole number >= 0; a price may be None = missing, except the close), a fix that
    changes nothing, or prices that would not bound each other (low above open/close, high below).
    """
    if not reason or not reason.strip():
        raise ReviewError("say why the bar is fixed", field="reason")
    cleaned = {name: _clean(name, value) for name, value in values.items()}
    if not cleaned:
        raise ReviewError("give at least one of " + ", ".join(FIXABLE), field="values")
    with transaction.atomic():
        bar = _locked(bar)
        old = snapshot(bar)
        if all(old[name] == value for name, value in cleaned.items()):
            raise ReviewError("the new values are the stored ones; accept the bar instead", field="values")
        for name, value in cleaned.items():
            setattr(bar, name, value)
        _check_prices(bar)
        # The received-data reasons are kept; the two a fix can cure are cleared when it does.
        if all(getattr(bar, name) is None or getattr(bar, name) > 0 for name in ("open", "high", "low", "close")):
            bar.flags &= ~ZERO_PRICE
        bar.flags &= ~OHLC_INCONSISTENT
        bar.reviewed, bar.quarantined = True, False
        bar.save(update_fields=[*cleaned, "flags", "reviewed", "quarantined", "updated_at"])
        return _record(bar, BarCorrection.Action.FIX, old, snapshot(bar), user=user, reason=reason)


def drop_bar(bar: PriceBar, *, user, reason: str) -> BarCorrection:
    """Delete a bar that should not exist (e.g. dated on a Saturday); its correction keeps the old values."""
    if not reason or not reason.strip():
        raise ReviewError("say why the bar is dropped", field="reason")
    with transaction.atomic():
        bar = _locked(bar)
        correction = _record(bar, BarCorrection.Action.DROP, snapshot(bar), {}, user=user, reason=reason)
        bar.delete()  # SET_NULL on the corrections' bar link: the history stays
        correction.refresh_from_db()
        return correction


def _locked(bar):
    # Re-read under a row lock, so two reviewers cannot both build on the same old values.
    try:
        return PriceBar.objects.select_for_update().select_related("instrument").get(pk=bar.pk)
    except PriceBar.DoesNotExist:
        raise ReviewError("the bar no longer exists (dropped by someone else?)", field="bar") from None


def _record(bar, action, old, new, *, user, reason):
    # The data page's cached tallies and the banner read the bars again once this commits.
    transaction.on_commit(freshness.forget)
    return BarCorrection.objects.create(
        bar=bar, instrument_id=bar.instrument_id, date=bar.date, action=action, old_values=old,
        new_values=new, reason=(reason or "").strip(), changed_by=user if getattr(user, "pk", None) else None,
    )


def _clean(name, value):
    if name not in FIXABLE:
        raise ReviewError(f"not a field that can be fixed (fixable: {', '.join(FIXABLE)})", field=name)
    if value is None or value == "":
        if name in ("close", "adj_factor"):
            raise ReviewError("cannot be empty", field=name)
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReviewError(f"{value!r} is not a number", field=name) from None
    if not math.isfinite(number):
        raise ReviewError(f"{value!r} is not a finite number", field=name)
    if name == "volume":
        if number < 0 or number != int(number):
            raise ReviewError(f"{value!r} is not a whole number of shares", field=name)
        return int(number)
    if number <= 0:
        raise ReviewError(f"{value!r} is not a price (must be above zero)", field=name)
    return number


def _check_prices(bar):
    o, h, lo, c = bar.open, bar.high, bar.low, bar.close
    if lo is not None and h is not None and lo > h:
        raise ReviewError(f"low {lo:g} is above high {h:g}", field="low")
    for name, value in (("open", o), ("close", c)):
        if value is None:
            continue
        if lo is not None and lo > value:
            raise ReviewError(f"low {lo:g} is above {name} {value:g}", field="low")
        if h is not None and h < value:
            raise ReviewError(f"high {h:g} is below {name} {value:g}", field="high")
