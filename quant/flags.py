"""Data-quality reasons: one bit each in a bar's `flags`, and their labels.

Kept apart from quant.quality (which needs numpy and pandas) so that a web request showing a bar's
reasons, the admin and the API load no DataFrame library (cold start on Lambda).
"""

ZERO_PRICE = 1 << 0  # a price field was zero or negative; stored as missing
OHLC_INCONSISTENT = 1 << 1  # low above open/close, high below them, or low above high
NOT_A_SESSION = 1 << 2  # dated on a day the exchange was closed
MISSING_CLOSE = 1 << 3  # no usable close at all
NEGATIVE_VOLUME = 1 << 4  # volume below zero; stored as missing
JUMP = 1 << 5  # close-to-close move beyond JUMP_RATIO that no corporate action explains
STALE = 1 << 6  # the close repeats the previous bar's within a long run of one close
FLIP = 1 << 7  # inside an excursion: a jump that a jump the other way undoes within FLIP_WINDOW bars
SYMBOL_REUSED = 1 << 8  # first bar of a new level after a long trading gap: another company on the code

FLAG_LABELS = {
    ZERO_PRICE: "zero or negative price (stored as missing)",
    OHLC_INCONSISTENT: "OHLC inconsistent (low/high do not bound open/close)",
    NOT_A_SESSION: "date is not a session of the exchange",
    MISSING_CLOSE: "no close price",
    NEGATIVE_VOLUME: "negative volume (stored as missing)",
    JUMP: "jump no corporate action explains",
    STALE: "stale: the same close repeated",
    FLIP: "flips back and forth (jump undone within days)",
    SYMBOL_REUSED: "symbol reused by another company, or relisted (new level after a long gap)",
}
QUARANTINE_MASK = NOT_A_SESSION | MISSING_CLOSE | FLIP | SYMBOL_REUSED
SERIES_FLAGS = JUMP | STALE | FLIP | SYMBOL_REUSED  # set by check_series; the rest by check_bars


def describe_flags(flags):
    """The reasons a bitmask carries, in a fixed order: 5 -> ['zero or negative price ...', 'date is not ...']."""
    return [label for bit, label in FLAG_LABELS.items() if flags & bit]
