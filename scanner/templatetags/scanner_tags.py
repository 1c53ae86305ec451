"""Template filters for scan metrics (scanner.formats) and replay percentages."""
from django import template

from scanner import formats

register = template.Library()


@register.filter
def metric(value, kind):
    """A metric by its kind, e.g. 0.1234 as pct -> '+12.34%'; None -> '—' (scanner.formats.metric)."""
    return formats.metric(value, kind)


@register.filter
def pct(value):
    """A fraction as a signed percentage with two decimals; None -> '—'."""
    return formats.metric(value, "pct")


@register.filter
def share(value):
    """A fraction as an unsigned percentage (hit rates); None -> '—'."""
    return formats.metric(value, "share")


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None
