"""Formatting of scan metrics by kind: pct (a fraction shown in %), price, money, ratio, number."""
from django import template

register = template.Library()


@register.filter
def metric(value, kind):
    """0.1234 as pct -> '+12.34%', as share -> '12.34%'; 265e6 as money -> '265.0M'; None -> '—'."""
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value * 100:+.2f}%"
    if kind == "share":
        return f"{value * 100:.2f}%"
    if kind == "money":
        for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= size:
                return f"{value / size:,.1f}{suffix}"
        return f"{value:,.0f}"
    if kind == "price":
        # Sub-dollar ASX prices trade in tenths of a cent.
        return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}"
    if kind == "ratio":
        return f"{value:.3f}"
    return f"{value:,.1f}"


@register.filter
def pct(value):
    """A fraction as a signed percentage with two decimals; None -> '—'."""
    return "—" if value is None else f"{value * 100:+.2f}%"


@register.filter
def share(value):
    """A fraction as an unsigned percentage with one decimal (hit rates); None -> '—'."""
    return "—" if value is None else f"{value * 100:.1f}%"


@register.filter
def get(mapping, key):
    return mapping.get(key) if mapping else None
