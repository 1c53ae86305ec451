"""Number formats of the backtest pages: a missing value is a dash, never 'None' or 'nan'."""
import math

from django import template

register = template.Library()


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@register.filter
def pct(value, digits=2):
    """0.1234 -> '12.34%'."""
    value = _number(value)
    return "—" if value is None else f"{value * 100:.{int(digits)}f}%"


@register.filter
def ratio(value, digits=2):
    value = _number(value)
    return "—" if value is None else f"{value:.{int(digits)}f}"


@register.filter
def money(value):
    value = _number(value)
    return "—" if value is None else f"{value:,.2f}"


@register.filter
def count(value):
    value = _number(value)
    return "—" if value is None else f"{value:,.0f}"


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)
