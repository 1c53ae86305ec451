"""Number formatting for the journal's pages: money, percentages, quantities, and the up/down colour.

Money rounds half up to the cent, as the API and the exports write it (trades.formats).
"""
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

from trades.formats import plain

register = template.Library()
DASH = "—"


def _number(value):
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _rounded(value, places):
    """`value` (Decimal, float, int or text) as a Decimal rounded half up to `places`; None if not a number."""
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    except (TypeError, ValueError, InvalidOperation):
        return None
    if not number.is_finite():
        return None
    rounded = number.quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded == 0 else rounded  # never "-0.00"


@register.filter
def money(value, places=2):
    """1234.5 -> '1,234.50' (half up: 0.125 -> '0.13'); None or NaN -> '—'."""
    number = _rounded(value, places)
    return DASH if number is None else f"{number:,.{int(places)}f}"


@register.filter
def signed_money(value, places=2):
    """+1,234.50 / -12.00 (a sign on gains too)."""
    number = _rounded(value, places)
    return DASH if number is None else f"{number:+,.{int(places)}f}"


@register.filter
def pct(value, places=2):
    """0.0123 -> '1.23%'; None -> '—'."""
    number = _number(value)
    if number is None:
        return DASH
    return f"{number * 100:,.{int(places)}f}%"


@register.filter
def signed_pct(value, places=2):
    number = _number(value)
    if number is None:
        return DASH
    return f"{number * 100:+,.{int(places)}f}%"


@register.filter
def qty(value):
    """A quantity without trailing zeros, grouped: Decimal('1200.500000') -> '1,200.5'."""
    if value is None or value == "":
        return DASH
    whole, _, fraction = plain(Decimal(str(value))).partition(".")
    grouped = f"{int(whole):,}" if whole not in ("-0",) else "-0"
    return f"{grouped}.{fraction}" if fraction else grouped


@register.filter
def ratio(value, places=2):
    number = _number(value)
    return DASH if number is None else f"{number:,.{int(places)}f}"


@register.filter
def updown(value):
    """CSS class for a signed number: 'up' above zero, 'down' below, '' otherwise."""
    number = _number(value)
    if number is None or number == 0:
        return ""
    return "up" if number > 0 else "down"
