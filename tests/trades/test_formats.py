"""How the journal writes numbers as text (trades.formats) and the pages' filters: no database."""
from decimal import Decimal

import pytest

from trades import formats
from trades.templatetags import journal

D = Decimal


@pytest.mark.parametrize(("value", "expected"), [
    (D("6E+1"), "60"), (D("2.5E+2"), "250"), (D("1E+5"), "100000"), (D("200.000000"), "200"),
    (D("2.500000"), "2.5"), (D("-0.000000"), "0"), (D("0.000001"), "0.000001"),
])
def test_plain_has_no_exponent_and_no_trailing_zeros(value, expected):
    assert formats.plain(value) == expected


@pytest.mark.parametrize(("value", "money", "cents"), [
    (D("73.400000"), "73.40", "73.40"), (D("622.4"), "622.40", "622.40"), (D("5"), "5.00", "5.00"),
    (D("-1605.13125"), "-1605.13125", "-1605.13"), (D("0.125"), "0.125", "0.13"), (D("-0.125"), "-0.125", "-0.13"),
    (D("-0.004"), "-0.004", "0.00"), (D("1E+5"), "100000.00", "100000.00"),
])
def test_prices_stay_exact_and_computed_money_rounds_half_up_to_the_cent(value, money, cents):
    assert (formats.money_text(value), formats.cents_text(value)) == (money, cents)


@pytest.mark.parametrize(("value", "expected"), [
    (-9.94999999999191e-05, "-0.0000994999999999191"), (0.02, "0.02"), (1.0, "1"), (None, ""), (float("nan"), ""),
])
def test_floats_are_written_without_exponent(value, expected):
    assert formats.float_text(value) == expected


@pytest.mark.parametrize("text", ["2024-01-05", " 2024-01-05 "])
def test_a_date_is_read_as_yyyy_mm_dd(text):
    assert str(formats.parse_date(text)) == "2024-01-05"


@pytest.mark.parametrize("text", ["05/01/2024", "20240105", "2024-W01-5", "2024-1-5", "2024-02-30", ""])
def test_any_other_date_form_is_refused(text):
    with pytest.raises(ValueError, match=r"is not a date \(YYYY-MM-DD\)"):
        formats.parse_date(text)


def test_page_money_rounds_as_the_api():
    assert (journal.money(D("0.125")), journal.money(0.125), journal.signed_money(D("-1605.13125"))) == (
        "0.13", "0.13", "-1,605.13")
    assert (journal.signed_money(D("-0.001")), journal.money(None), journal.money("x")) == ("+0.00", "—", "—")
    assert journal.qty(D("1200.500000")) == "1,200.5" and journal.qty(D("6E+1")) == "60"
