"""How the journal writes numbers as text: one set of rules for the API, the CSV exports, forms and pages.

- quantities and other plain decimals: as stored, without exponent or trailing zeros (`60`, `2.5`);
- prices, commissions and starting cash (what a trader typed): exact, with at least two decimals (`180.10`);
- money the journal computed (P&L, fees, cash, value, costs): rounded half up to the cent (`-1605.13`);
- returns, ratios and rates (floats): positional, with the digits that identify the float, never an exponent.

Stored values are never rounded; only their text is. Dates are read in one format everywhere (forms,
imports): ISO YYYY-MM-DD (parse_date).
"""
import datetime as dt
import math
import re
from decimal import ROUND_HALF_UP, Decimal


CENT = Decimal("0.01")


def plain(value):
    """A Decimal (or int, or decimal text) without exponent or trailing zeros: Decimal('6E+1') -> '60'."""
    text = format(Decimal(value).normalize(), "f")
    return "0" if text in ("-0", "0") else text


def money_text(value):
    """An exact amount with at least two decimals and no trailing zeros beyond: 73.400000 -> '73.40'."""
    whole, _, fraction = plain(value).partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def cents(value):
    """A computed amount rounded half up to the cent, as a Decimal (None stays None)."""
    if value is None:
        return None
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def cents_text(value):
    """A computed amount rounded half up to the cent: Decimal('-1605.13125') -> '-1605.13'."""
    rounded = cents(value)
    return "0.00" if rounded == 0 else format(rounded, "f")


def float_text(value):
    """A float as plain positional text with the shortest digits that give it back: -9.94999999999191e-05
    -> '-0.0000994999999999191'; '' for None or NaN."""
    if value is None or not math.isfinite(value):
        return ""
    return format(Decimal(repr(float(value))).normalize(), "f")  # repr: the shortest digits; 'f': no exponent


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text):
    """A date typed as YYYY-MM-DD, or ValueError "'05/01/2024' is not a date (YYYY-MM-DD)".

    Only that form: 05/01/2024 is 5 January to some and 1 May to others, and date.fromisoformat would
    also read 20240105 or 2024-W01-5, which a form would not.
    """
    text = str(text).strip()
    try:
        if ISO_DATE.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
