"""How scan metrics read, by kind: pct (a signed fraction shown in %), share (an unsigned one), price, money,
ratio or number. One place for the pages (template filters) and the command."""


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
