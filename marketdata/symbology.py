"""What a user means by a symbol: ' bhp.ax ' -> BHP on XASX, 'BRK-B' -> BRK.B, 'NYSE:BHP' -> BHP on XNYS.

Pure and light (no pandas, no requests), so the web entry point can resolve symbols cheaply. Our symbol
is the exchange's own code (BHP, BRK.B, XJO) and the exchange is part of every key, so BHP on XASX
(AUD) and BHP on XNYS (USD) never share a price (PITFALLS BR-15). Providers' spellings are made at the
edge, in marketdata/providers/symbols.py.
"""
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SymbolRequest:
    """One of our instruments to fetch: its own symbol and exchange (BHP, XASX), not a provider's."""

    symbol: str
    exchange: str
    asset_type: str = "equity"

    @property
    def key(self):
        return (self.symbol, self.exchange)


US = ("XNYS", "XNAS", "ARCX", "BATS")
# Yahoo's suffix for listings outside the US (exchange MIC -> suffix).
YAHOO_SUFFIX = {"XASX": ".AX", "XTSE": ".TO"}
CURRENCY = {"XASX": "AUD", "XTSE": "CAD", "XNYS": "USD", "XNAS": "USD", "ARCX": "USD", "BATS": "USD"}
# Names people type for the venues, to the MICs we key on.
EXCHANGE_NAMES = {"ASX": "XASX", "NYSE": "XNYS", "NASDAQ": "XNAS", "NYSEARCA": "ARCX", "ARCA": "ARCX",
                  "TSX": "XTSE"}
YAHOO_ASX_INDEX = {"XAO": "^AORD"}  # otherwise ^A + code: XJO -> ^AXJO


class SymbolError(ValueError):
    """User input that names no symbol, or a suffix that contradicts the exchange given."""


def exchange_mic(text):
    """'asx' -> 'XASX', 'XNYS' -> 'XNYS', '' -> None."""
    text = (text or "").strip().upper()
    return EXCHANGE_NAMES.get(text, text) or None


def parse(text, exchange=None, asset_type=None):
    """Normalise a user's symbol before any request: ' nvda' -> NVDA, 'bhp.ax' -> BHP on XASX.

    Returns SymbolRequest(symbol, exchange or '' when nothing says which, asset_type or '' likewise).
    A Yahoo suffix or prefix says the exchange and kind: 'BHP.AX' (XASX), 'RY.TO' (XTSE), '^AXJO'
    (index XJO on XASX), 'AUDUSD=X' (FX pair). 'XASX:BHP' is accepted too. A suffix that contradicts
    `exchange` raises SymbolError; a suffix is never added twice nor dropped.
    """
    raw = text
    text = (text or "").strip().upper()
    exchange = exchange_mic(exchange)
    if ":" in text:
        prefix, text = (part.strip() for part in text.split(":", 1))
        exchange = _agree(raw, exchange, exchange_mic(prefix))
    if not text:
        raise SymbolError(f"{raw!r} names no symbol")
    if text.endswith("=X"):
        return SymbolRequest(text[:-2], _agree(raw, exchange, "FX"), "fx")
    if text.startswith("^"):
        code = {v: k for k, v in YAHOO_ASX_INDEX.items()}.get(text)
        if code is None and text.startswith("^A") and exchange in (None, "XASX") and len(text) == 5:
            code = text[2:]
        if code is not None:
            return SymbolRequest(code, _agree(raw, exchange, "XASX"), "index")
        return SymbolRequest(text, exchange or "", "index")
    for mic, suffix in YAHOO_SUFFIX.items():
        if text.endswith(suffix):
            return SymbolRequest(text[: -len(suffix)], _agree(raw, exchange, mic), asset_type or "")
    if exchange in US or exchange is None:
        # Share classes: the exchange's own code has a dot (BRK.B); Yahoo and Tiingo spell it BRK-B.
        text = re.sub(r"^([A-Z]+)[-/ ]([A-Z])$", r"\1.\2", text)
    return SymbolRequest(text, exchange or "", asset_type or "")


def _agree(raw, given, implied):
    if given and given != implied:
        raise SymbolError(f"{raw.strip()!r} is a {implied} symbol, but the exchange given is {given}")
    return implied


def currency(exchange):
    return CURRENCY.get(exchange, "")
