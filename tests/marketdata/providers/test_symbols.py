"""Symbol mapping: user text to our (symbol, exchange), ours to each provider's spelling (PITFALLS BR-15)."""
import pytest

from marketdata.providers import symbols
from marketdata.providers.base import SymbolRequest, Unsupported
from marketdata.providers.symbols import SymbolError, parse


@pytest.mark.parametrize(("text", "exchange", "ours", "at_yahoo", "currency"), [
    ("BHP", "ASX", ("BHP", "XASX"), "BHP.AX", "AUD"),
    ("BHP.AX", "ASX", ("BHP", "XASX"), "BHP.AX", "AUD"),  # not BHP.AX.AX
    ("bhp.ax", None, ("BHP", "XASX"), "BHP.AX", "AUD"),  # exchange inferred from the suffix
    ("BHP", "NYSE", ("BHP", "XNYS"), "BHP", "USD"),  # the US listing: another series
    ("BRK.B", "NYSE", ("BRK.B", "XNYS"), "BRK-B", "USD"),
    ("RY.TO", "TSX", ("RY", "XTSE"), "RY.TO", "CAD"),
])
def test_br15_each_input_maps_to_one_yahoo_symbol_and_its_own_listing(text, exchange, ours, at_yahoo, currency):
    request = parse(text, exchange)

    assert request.key == ours
    assert symbols.yahoo(request) == at_yahoo
    assert symbols.currency(request.exchange) == currency


def test_br15_bhp_on_the_asx_and_on_nyse_never_share_a_key():
    asx, nyse = parse("BHP.AX"), parse("BHP", "XNYS")

    assert asx.key != nyse.key
    assert (symbols.yahoo(asx), symbols.yahoo(nyse)) == ("BHP.AX", "BHP")


def test_br15_a_suffix_that_contradicts_the_exchange_is_refused():
    with pytest.raises(SymbolError, match="'BHP.AX' is a XASX symbol, but the exchange given is XNYS"):
        parse("BHP.AX", "XNYS")


def test_br14_user_input_is_normalised_before_any_request():
    assert [parse(s).symbol for s in ["AAPL", "MSFT ", " nvda"]] == ["AAPL", "MSFT", "NVDA"]


def test_share_classes_are_brk_dash_b_at_tiingo_and_stooq_and_brk_dot_b_for_us():
    ours = parse("brk-b", "XNYS")

    assert ours.key == ("BRK.B", "XNYS")
    assert (symbols.tiingo(ours), symbols.stooq(ours)) == ("BRK-B", "brk-b.us")


def test_indices_and_fx_pairs_take_yahoos_spelling_both_ways():
    assert parse("^AXJO") == SymbolRequest("XJO", "XASX", "index")
    assert parse("^AORD") == SymbolRequest("XAO", "XASX", "index")
    assert parse("audusd=x") == SymbolRequest("AUDUSD", "FX", "fx")
    assert symbols.yahoo(SymbolRequest("XJO", "XASX", "index")) == "^AXJO"
    assert symbols.yahoo(SymbolRequest("XAO", "XASX", "index")) == "^AORD"
    assert symbols.yahoo(SymbolRequest("AUDUSD", "FX", "fx")) == "AUDUSD=X"
    assert symbols.stooq(SymbolRequest("AUDUSD", "FX", "fx")) == "audusd"


def test_exchange_prefix_is_accepted_and_a_bare_symbol_leaves_the_exchange_open():
    assert parse("xasx:bhp").key == ("BHP", "XASX")
    assert parse(" nvda ").key == ("NVDA", "")


def test_tiingo_and_stooq_refuse_asx_listings_by_name():
    bhp = SymbolRequest("BHP", "XASX")

    with pytest.raises(Unsupported, match="Tiingo's daily prices cover US listings only, not BHP on XASX"):
        symbols.tiingo(bhp)
    with pytest.raises(Unsupported, match="Stooq lists no BHP on XASX"):
        symbols.stooq(bhp)


def test_an_empty_symbol_is_refused():
    with pytest.raises(SymbolError, match="names no symbol"):
        parse("  ")
