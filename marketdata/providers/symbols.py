"""Symbol mapping: a user's text to our own (symbol, exchange), and ours to each provider's spelling.

Our symbol is the exchange's own code (BHP, BRK.B, XJO) and the exchange is part of every key, so
BHP on XASX (AUD) and BHP on XNYS (USD) are two series that never share a price (PITFALLS BR-15).
A provider's spelling is made only at the edge, just before a request:

    ours              Yahoo        Tiingo    Stooq
    BHP / XASX        BHP.AX       -         -        (Tiingo and Stooq list no ASX securities)
    BHP / XNYS        BHP          BHP       bhp.us
    BRK.B / XNYS      BRK-B        BRK-B     brk-b.us
    XJO / XASX index  ^AXJO        -         -        (the All Ordinaries, XAO, is ^AORD)
    AUDUSD / FX       AUDUSD=X     -         audusd
"""
from ..symbology import (  # noqa: F401  (re-exported: the parser lives in symbology)
    CURRENCY, EXCHANGE_NAMES, US, YAHOO_ASX_INDEX, YAHOO_SUFFIX, SymbolError, SymbolRequest, currency,
    exchange_mic, parse,
)
from .base import Unsupported


def yahoo(request):
    """Our symbol at Yahoo: BHP/XASX -> BHP.AX, BRK.B/XNYS -> BRK-B, XJO/XASX index -> ^AXJO, AUDUSD -> AUDUSD=X."""
    symbol, exchange = request.symbol, request.exchange
    if request.asset_type == "fx" or exchange == "FX":
        return f"{symbol}=X"
    if request.asset_type == "index":
        if symbol.startswith("^"):
            return symbol
        if exchange == "XASX":
            return YAHOO_ASX_INDEX.get(symbol, f"^A{symbol}")
        return f"^{symbol}"
    if exchange in US:
        return symbol.replace(".", "-")
    if exchange in YAHOO_SUFFIX:
        return symbol + YAHOO_SUFFIX[exchange]
    raise Unsupported(f"no Yahoo spelling for {symbol} on {exchange}")


def tiingo(request):
    """Our symbol at Tiingo (US listings only): BRK.B -> BRK-B."""
    if request.exchange not in US or request.asset_type in ("index", "fx"):
        raise Unsupported(f"Tiingo's daily prices cover US listings only, not {request.symbol} on {request.exchange}")
    return request.symbol.replace(".", "-")


def stooq(request):
    """Our symbol at Stooq: AAPL -> aapl.us, BRK.B -> brk-b.us, AUDUSD -> audusd, ^SPX -> ^spx."""
    symbol = request.symbol.lower()
    if request.asset_type == "fx" or request.exchange == "FX":
        return symbol
    if request.asset_type == "index" and symbol.startswith("^"):
        return symbol
    if request.exchange in US and request.asset_type != "index":
        return symbol.replace(".", "-") + ".us"
    raise Unsupported(f"Stooq lists no {request.symbol} on {request.exchange} (it covers US listings, "
                      "not the ASX)")
