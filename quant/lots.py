"""Sizing, FIFO lots and realised P&L in Decimal: the journal's arithmetic that needs no dataframe.

Apart from `quant.portfolio` (marks to market over many days, pandas) so that recording a trade through
the web app does not load pandas; `quant.portfolio` re-exports these names, and its docstring gives the
conventions (basis units across splits, commissions shared pro rata, rates as Decimals of their repr).
"""
import math
from decimal import ROUND_HALF_EVEN, Decimal

WHOLE_SHARE_TOLERANCE = 1e-4
LONG, SHORT = "long", "short"


# --- sizing and lots ------------------------------------------------------------------------------

def shares_for_target(equity, price, weight, *, tolerance=WHOLE_SHARE_TOLERANCE):
    """Whole shares for a target weight of equity at a price: (shares, reason).

    shares = equity x weight / price, rounded toward zero (5.5 -> 5, -2.5 -> -2) unless it lies within
    `tolerance` of a whole number (3.9999 -> 4: a rounding artefact, not a fraction). When that gives
    0 shares, reason says why (PITFALLS BR-21: 5% of 1,000.00 at 120.00 is 0.417 shares, "below one
    share"); otherwise reason is None. A negative weight is a short (negative shares).
    """
    equity, price, weight = float(equity), float(price), float(weight)
    if not price > 0:
        raise ValueError(f"price must be positive, got {price}")
    raw = equity * weight / price
    nearest = round(raw)
    # The tolerance itself counts as whole: 3.9999 is 4 (a float's last bit must not decide it).
    shares = int(nearest) if abs(raw - nearest) <= tolerance * (1 + 1e-9) else int(math.trunc(raw))
    if shares == 0:
        return 0, (f"below one share: {weight:.2%} of {equity:,.2f} at {price:,.2f} is {abs(raw):.3f} "
                   f"shares; no trade")
    return shares, None


def fifo_allocate(lots, quantity):
    """Match `quantity` against open lots first in, first out: [(lot, quantity taken)].

    lots: [(lot id, open quantity)] oldest first (Decimal quantities). Raises ValueError naming the
    open total when the quantity is more than the lots hold.
    """
    quantity = Decimal(quantity)
    total = sum((Decimal(q) for _, q in lots), Decimal(0))
    if quantity > total:
        raise ValueError(f"{_plain(quantity)} is more than the {_plain(total)} open")
    taken, left = [], quantity
    for lot, open_quantity in lots:
        if left <= 0:
            break
        take = min(Decimal(open_quantity), left)
        if take > 0:
            taken.append((lot, take))
            left -= take
    return taken


def pro_rata(amount, weights, places=6):
    """Split a Decimal `amount` in proportion to `weights`, rounded to `places`, summing exactly to it.

    The rounding remainder goes to the last share (a commission of 10.00 over lots of 1, 1 and 1 is
    3.333333, 3.333333, 3.333334).
    """
    amount = Decimal(amount)
    weights = [Decimal(w) for w in weights]
    total = sum(weights, Decimal(0))
    if not weights:
        return []
    if total == 0:
        raise ValueError("weights sum to zero")
    step = Decimal(1).scaleb(-places)
    shares = [(amount * w / total).quantize(step, rounding=ROUND_HALF_EVEN) for w in weights[:-1]]
    return [*shares, amount - sum(shares, Decimal(0))]


def split_ratio(splits, start, end):
    """Shares held at `end` per share held at `start`: the product of the split ratios with ex-date in
    (start, end]. splits: iterable of (ex_date, ratio)."""
    ratio = 1.0
    for ex_date, r in splits:
        if start < ex_date <= end:
            ratio *= float(r)
    return ratio


# --- realised P&L of one trade ---------------------------------------------------------------------

def realised_pnl(*, direction, quantity, entry_price, entry_commission, exits):
    """Realised P&L of a trade's exits, in the trade's currency, as Decimals.

    exits: [(quantity, price, commission, split ratio since the entry)] as executed; the ratio turns an
    exit quantity back into entry shares (1 when no split came between). Returns {closed_quantity
    (entry shares), pnl (after every exit's commission and the closed share of the entry commission),
    pnl_pct (pnl / entry notional of the closed quantity, float), exit_price (quantity-weighted, as
    executed), fees (entry + exit commissions)}; pnl, pnl_pct and exit_price are None without exits.
    PITFALLS BR-19: a round trip of 10 at 29,037.85 with 116.1514 on each leg is -232.3028, fees
    charged once per leg; BR-22: 10 x (187.44 - 180.10) = 73.40 exactly.
    """
    sign = Decimal(1) if direction == LONG else Decimal(-1)
    quantity, entry_price = Decimal(quantity), Decimal(entry_price)
    entry_commission = Decimal(entry_commission)
    closed = proceeds = cost = commissions = executed = Decimal(0)
    for exit_quantity, price, commission, ratio in exits:
        exit_quantity, price = Decimal(exit_quantity), Decimal(price)
        units = exit_quantity / _decimal_ratio(ratio)
        closed += units
        proceeds += exit_quantity * price
        cost += units * entry_price
        commissions += Decimal(commission)
        executed += exit_quantity
    fees = entry_commission + commissions
    if not exits:
        return {"closed_quantity": Decimal(0), "pnl": None, "pnl_pct": None, "exit_price": None, "fees": fees}
    entry_share = entry_commission * closed / quantity if quantity else Decimal(0)
    pnl = sign * (proceeds - cost) - commissions - entry_share
    notional = closed * entry_price
    return {
        "closed_quantity": closed,
        "pnl": pnl,
        "pnl_pct": float(pnl / notional) if notional else None,
        "exit_price": proceeds / executed,
        "fees": fees,
    }


def realised_pnl_base(*, direction, quantity, entry_price, entry_commission, entry_rate, exits):
    """realised_pnl in the portfolio's currency: each leg converted at its own day's rate.

    entry_rate and each exit's rate (a fifth element of the exit tuple) multiply the trade's currency
    into the base (1 for a trade in the base currency). Returns the Decimal P&L, or None when a rate is
    None (the caller says which).
    """
    if entry_rate is None or any(e[4] is None for e in exits):
        return None
    sign = Decimal(1) if direction == LONG else Decimal(-1)
    quantity, entry_price = Decimal(quantity), Decimal(entry_price)
    entry_rate = _decimal_ratio(entry_rate)
    closed = proceeds = commissions = Decimal(0)
    for exit_quantity, price, commission, ratio, rate in exits:
        rate = _decimal_ratio(rate)
        units = Decimal(exit_quantity) / _decimal_ratio(ratio)
        closed += units
        proceeds += Decimal(exit_quantity) * Decimal(price) * rate
        commissions += Decimal(commission) * rate
    cost = closed * entry_price * entry_rate
    entry_share = Decimal(entry_commission) * entry_rate * closed / quantity if quantity else Decimal(0)
    return sign * (proceeds - cost) - commissions - entry_share


def _decimal_ratio(value):
    """A float ratio or rate as the Decimal of its shortest repr (4.0 -> 4, 0.6543 -> 0.6543)."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def _plain(value):
    text = format(Decimal(value).normalize(), "f")
    return text


def first_affected_date(old_legs, new_legs):
    """The earliest date whose marks a change can move: the first leg in one set and not the other.

    Legs are hashable tuples starting with their date (date, quantity, price, commission, ...); a
    change that touches no leg (notes, strategy) moves nothing and gives None.
    """
    changed = set(old_legs) ^ set(new_legs)
    return min((leg[0] for leg in changed), default=None)
