"""Journal writes: portfolios, trades and their versions, exits (FIFO across lots), cash, snapshots.

Every change to a trade is a new TradeVersion (with its exits) recorded at its knowledge time; the
Trade row is the current version, for fast lists. Each write marks the portfolio's snapshots stale from
the first day it can move (`snapshots_stale_from`) and, when its transaction commits, enqueues the
snapshot update (trades.tasks.update_snapshots), which recomputes exactly those days.
"""
import datetime as dt
import hashlib
import logging
import math
import secrets
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from marketdata.models import CorporateAction, Instrument, parse_symbol
from parakeet.lazy import lazy_module
from quant import lots as book

from .errors import JournalError, Problems
from .formats import plain
from .models import (
    CALENDAR_OF_CURRENCY, CashMovement, ChangeKind, Direction, Portfolio, PortfolioSnapshot, Trade, TradeExit,
    TradeImport, TradeStatus, TradeVersion,
)

logger = logging.getLogger(__name__)

SIX = Decimal("0.000001")
# The fields a version copies from the trade's state (TradeFields), besides the derived ones.
STATE_FIELDS = ("symbol", "instrument", "direction", "quantity", "entry_price", "entry_date", "entry_commission",
                "strategy_name", "signal_ref", "notes", "event_time", "status")
DERIVED_FIELDS = ("closed_quantity", "exit_price", "exit_date", "fees", "pnl", "pnl_pct", "pnl_base",
                  "pnl_base_missing")
EDITABLE = ("symbol", "direction", "quantity", "entry_price", "entry_date", "entry_commission", "exits",
            "strategy_name", "signal_ref", "notes", "event_time")

# Loaded on first use (pandas, exchange-calendars): a web request that only reads the journal needs neither.
calendars = lazy_module("marketdata.calendars")
marks = lazy_module("quant.portfolio")
valuation = lazy_module("trades.valuation")


@dataclass(frozen=True)
class Exit:
    """An exit leg as executed: date, quantity, price, commission (Decimals)."""

    date: dt.date
    quantity: Decimal
    price: Decimal
    commission: Decimal = Decimal(0)

    def leg(self):
        return (self.date, "exit", self.quantity, self.price, self.commission)


# --- portfolios ----------------------------------------------------------------------------------

def create_portfolio(*, owner, name, base_currency="AUD", starting_cash=Decimal(0), inception_date,
                     benchmark=None) -> Portfolio:
    """A new portfolio owned by `owner`. Raises JournalError naming each duplicate or bad value."""
    problems = Problems()
    name = (name or "").strip()
    if not name:
        problems.add("name", "a portfolio needs a name")
    elif Portfolio.objects.filter(name=name).exists():
        problems.add("name", f"a portfolio named {name!r} already exists")
    if base_currency not in CALENDAR_OF_CURRENCY:
        problems.add("base_currency", f"{base_currency!r} is not one of {', '.join(CALENDAR_OF_CURRENCY)}")
    starting_cash = problems.attempt(_money, starting_cash, "starting_cash")
    if starting_cash is not None and starting_cash < 0:
        problems.add("starting_cash", "must not be negative")
    if inception_date is None:
        problems.add("inception_date", "a date is required")
    problems.raise_any()
    return Portfolio.objects.create(owner=owner, name=name, base_currency=base_currency, starting_cash=starting_cash,
                                    inception_date=inception_date, benchmark=benchmark)


UNSET = object()


@transaction.atomic
def update_portfolio(portfolio, *, name=None, benchmark=UNSET, starting_cash=None, inception_date=None) -> Portfolio:
    """Rename a portfolio, set its benchmark, or change its starting cash or inception date.

    A new starting cash or inception date moves every snapshot: they are marked stale from the
    inception. The inception date cannot move after the first trade or cash movement.
    """
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    problems = Problems()
    if name is not None and name.strip() != portfolio.name:
        if not name.strip():
            problems.add("name", "a portfolio needs a name")
        elif Portfolio.objects.filter(name=name.strip()).exclude(pk=portfolio.pk).exists():
            problems.add("name", f"a portfolio named {name.strip()!r} already exists")
        portfolio.name = name.strip()
    if benchmark is not UNSET:
        portfolio.benchmark = benchmark
    moved = False
    cash = problems.attempt(_money, starting_cash, "starting_cash") if starting_cash is not None else None
    if cash is not None and cash != portfolio.starting_cash:
        if cash < 0:
            problems.add("starting_cash", "must not be negative")
        portfolio.starting_cash, moved = cash, True
    if inception_date is not None and inception_date != portfolio.inception_date:
        first = first_activity(portfolio)
        if first is not None and inception_date > first:
            problems.add("inception_date", f"the book has activity on {first}, before {inception_date}")
        portfolio.inception_date, moved = inception_date, True
    problems.raise_any()
    portfolio.save()
    if moved:
        mark_snapshots_stale(portfolio, portfolio.inception_date)
    return portfolio


def first_activity(portfolio):
    """The date of the book's first live trade or cash movement (None without any)."""
    dates = [d for d in (
        Trade.objects.live().filter(portfolio=portfolio).order_by("entry_date").values_list("entry_date", flat=True).first(),
        CashMovement.objects.live().filter(portfolio=portfolio).order_by("date").values_list("date", flat=True).first(),
    ) if d is not None]
    return min(dates, default=None)


# --- trades --------------------------------------------------------------------------------------

def resolve_instrument(text, field="symbol"):
    """The instrument a user means by `text` (AAPL, XASX:BHP, BHP.AX); JournalError naming `field` otherwise."""
    if not (text or "").strip():
        raise JournalError(field, "a symbol is required")
    try:
        return Instrument.objects.resolve(text)
    except Instrument.DoesNotExist:
        symbol, exchange = parse_symbol(text)
        where = f" on {exchange}" if exchange else ""
        raise JournalError(field, f"unknown symbol {symbol!r}{where}: no such instrument") from None
    except Instrument.MultipleObjectsReturned:
        symbol, _ = parse_symbol(text)
        keys = [f"{e}:{symbol}" for e in Instrument.objects.filter(symbol=symbol).order_by("exchange")
                .values_list("exchange", flat=True)]
        raise JournalError(field, f"symbol {symbol!r} is listed on {', '.join(keys)}; say which, e.g. {keys[0]}") from None


@transaction.atomic
def record_trade(*, portfolio, user, symbol, entry_date, entry_price, quantity=None, target_weight=None,
                 direction=Direction.LONG, entry_commission=Decimal(0), exits=(), strategy_name="", signal_ref="",
                 notes="", trade_id=None, event_time=None, kind=ChangeKind.CREATED, reason="", now=None) -> Trade:
    """Open a trade (version 1), with any exits already made; returns the Trade.

    quantity, or target_weight: a fraction of the book's equity on the entry date turned into whole
    shares at the entry price (quant.portfolio.shares_for_target; less than one share is refused with
    the reason, BR-21). Raises JournalError naming the field for any bad input (see _check).
    """
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    state, trade_id = _opening(portfolio, symbol=symbol, entry_date=entry_date, entry_price=entry_price,
                               quantity=quantity, target_weight=target_weight, direction=direction,
                               entry_commission=entry_commission, exits=exits, strategy_name=strategy_name,
                               signal_ref=signal_ref, notes=notes, trade_id=trade_id, event_time=event_time)
    trade = Trade(trade_id=trade_id, portfolio=portfolio)
    _write_version(trade, state, user=user, kind=kind, reason=reason, now=now)
    mark_snapshots_stale(portfolio, state["entry_date"])
    return trade


def check_trade(*, portfolio, symbol, entry_date, entry_price, quantity=None, target_weight=None,
                direction=Direction.LONG, entry_commission=Decimal(0), exits=(), trade_id=None) -> None:
    """What record_trade would refuse, without writing: JournalError naming every bad field at once."""
    _opening(portfolio, symbol=symbol, entry_date=entry_date, entry_price=entry_price, quantity=quantity,
             target_weight=target_weight, direction=direction, entry_commission=entry_commission, exits=exits,
             trade_id=trade_id)


TRADE_ID_LENGTH = Trade._meta.get_field("trade_id").max_length


def _opening(portfolio, *, symbol, entry_date, entry_price, quantity, target_weight, direction, entry_commission,
             exits, strategy_name="", signal_ref="", notes="", trade_id=None, event_time=None):
    """(state, trade_id) of a new trade, checked: every independent problem is collected before the
    JournalError that names them all (a bad symbol, quantity, price and date are reported together)."""
    problems = Problems()
    instrument = symbol if isinstance(symbol, Instrument) else problems.attempt(resolve_instrument, symbol)
    entry_price = problems.attempt(_money, entry_price, "entry_price")
    legs = [_exit(e, _exit_namer("list", i), problems) for i, e in enumerate(exits)]
    given = quantity not in (None, "")
    if not given and target_weight in (None, ""):
        problems.add("quantity", "give a quantity, or a target weight to size the trade from")
    quantity = problems.attempt(_money, quantity, "quantity") if given else None
    trade_id = (trade_id or "").strip()
    if len(trade_id) > TRADE_ID_LENGTH:
        problems.add("trade_id", f"at most {TRADE_ID_LENGTH} characters, not {len(trade_id)}")
    elif trade_id and Trade.objects.filter(trade_id=trade_id).exists():
        problems.add("trade_id", f"trade {trade_id!r} already exists")
    state = {
        "symbol": instrument.symbol if instrument else None, "instrument": instrument, "direction": direction,
        "quantity": quantity, "entry_price": entry_price, "entry_date": entry_date,
        "entry_commission": problems.attempt(_money, entry_commission or 0, "entry_commission"),
        "exits": legs, "strategy_name": (strategy_name or "").strip(),
        "signal_ref": (signal_ref or "").strip(), "notes": notes or "", "status": TradeStatus.OPEN,
    }
    _check(portfolio, state, problems, exit_names="list" if exits else None)
    if not given and target_weight not in (None, ""):
        weight = problems.attempt(_weight, target_weight, direction)
        # Sizing needs the price and the day; it is only tried when both are good.
        if weight is not None and not problems.about("entry_price", "entry_date"):
            state["quantity"] = problems.attempt(_size, portfolio, weight, entry_price, entry_date)
            if state["quantity"] is not None:
                _check_legs(state, problems, "list" if exits else None)
    problems.raise_any()
    state["event_time"] = event_time or _event_time(instrument, entry_date)
    return state, trade_id or _new_trade_id(instrument.symbol, entry_date)


@transaction.atomic
def revise_trade(trade, *, user, changes, kind=None, reason="", now=None) -> Trade:
    """Change any of EDITABLE (exits: the whole list) in a new version; returns the Trade.

    kind: EDITED by default, CORRECTED when an admin changes someone else's trade (or says so). A
    cancelled trade cannot be edited. Raises JournalError naming the field.
    """
    trade = _locked(trade)
    old_legs = _legs(_state(trade))
    state = revised_state(trade, changes)
    if kind is None:
        kind = ChangeKind.CORRECTED if user is not None and user.pk != trade.portfolio.owner_id else ChangeKind.EDITED
    _write_version(trade, state, user=user, kind=kind, reason=reason, now=now)
    mark_snapshots_stale(trade.portfolio, book.first_affected_date(old_legs, _legs(state)))
    return trade


def revised_state(trade, changes):
    """The state `changes` would give the trade, checked (JournalError naming the field); writes nothing."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise JournalError([(name, "cannot be changed") for name in sorted(unknown)])
    if trade.status == TradeStatus.CANCELLED:
        raise JournalError("status", "the trade is cancelled; cancelled trades keep their last version")
    problems = Problems()
    state = _state(trade)
    if "symbol" in changes:
        instrument = (changes["symbol"] if isinstance(changes["symbol"], Instrument)
                      else problems.attempt(resolve_instrument, changes["symbol"]))
        state["instrument"], state["symbol"] = instrument, instrument.symbol if instrument else None
    for name in ("direction", "entry_date", "strategy_name", "signal_ref", "notes", "event_time"):
        if name in changes:
            state[name] = changes[name]
    for name in ("quantity", "entry_price", "entry_commission"):
        if name in changes:
            state[name] = problems.attempt(_money, changes[name], name)
    if "exits" in changes:
        state["exits"] = [_exit(e, _exit_namer("list", i), problems) for i, e in enumerate(changes["exits"])]
    _check(trade.portfolio, state, problems, exit_names="list" if "exits" in changes else None)
    problems.raise_any()
    if "entry_date" in changes and "event_time" not in changes:
        state["event_time"] = _event_time(state["instrument"], state["entry_date"])
    return state


@transaction.atomic
def close_trade(trade, *, user, date, price, quantity=None, commission=Decimal(0), reason="", now=None,
                kind=ChangeKind.CLOSED) -> Trade:
    """Record an exit of this trade: `quantity` shares (default: all still open) at `price` on `date`.

    A partial exit leaves the trade open. Raises JournalError naming exit_quantity when it is more than
    the open quantity, exit_date when it is before the entry or not a session, and so on.
    """
    trade = _locked(trade)
    if trade.status != TradeStatus.OPEN:
        raise JournalError("status", f"the trade is {trade.status}; only an open trade can be closed")
    state = _state(trade)
    old_legs = _legs(state)
    if quantity in (None, ""):
        ratio = book.split_ratio(_splits(state["instrument"]), state["entry_date"], date) if date else 1.0
        quantity = (trade.open_quantity * Decimal(repr(ratio))).normalize()
    problems = Problems()
    leg = _exit({"date": date, "quantity": quantity, "price": price, "commission": commission},
                _exit_namer("last", 0), problems)
    state["exits"] = [*state["exits"], leg]
    _check(trade.portfolio, state, problems, exit_names="last")
    problems.raise_any()
    _write_version(trade, state, user=user, kind=kind, reason=reason, now=now)
    mark_snapshots_stale(trade.portfolio, book.first_affected_date(old_legs, _legs(state)))
    return trade


@transaction.atomic
def close_position(*, portfolio, user, symbol, date, price, quantity, direction=Direction.LONG,
                   commission=Decimal(0), reason="", now=None, kind=ChangeKind.CLOSED) -> list:
    """Sell (or buy back) `quantity` shares of a position, matched first in, first out against its lots.

    The open trades of `symbol` and `direction` entered on or before `date` are the lots, oldest first;
    the commission is shared in proportion to the shares each lot gives. Returns the trades touched.
    Raises JournalError naming quantity when the lots hold fewer shares.
    """
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    problems = Problems()
    instrument = symbol if isinstance(symbol, Instrument) else problems.attempt(resolve_instrument, symbol)
    quantity = problems.attempt(_money, quantity, "quantity")
    if quantity is not None and quantity <= 0:
        problems.add("quantity", "must be more than 0")
    price = problems.attempt(_money, price, "price")
    if price is not None and price <= 0:
        problems.add("price", "must be more than 0")
    commission = problems.attempt(_money, commission or 0, "commission")
    if commission is not None and commission < 0:
        problems.add("commission", "must not be negative")
    if instrument is not None:
        problems.attempt(_check_day, instrument, date, "date", timezone.localdate())
    elif date is None:
        problems.add("date", "a date is required")
    if problems.about("symbol", "quantity", "date"):
        problems.raise_any()  # the lots to match depend on these
    lots = list(Trade.objects.select_for_update().filter(
        portfolio=portfolio, instrument=instrument, direction=direction, status=TradeStatus.OPEN,
        entry_date__lte=date).order_by("entry_date", "id"))
    splits = _splits(instrument)
    # Open shares of each lot as held on `date` (a split since its entry multiplies them).
    held = [(lot, (lot.open_quantity * Decimal(repr(book.split_ratio(splits, lot.entry_date, date)))).normalize())
            for lot in lots]
    try:
        taken = book.fifo_allocate([(lot.pk, shares) for lot, shares in held], quantity)
    except ValueError as exc:
        side = "long" if direction == Direction.LONG else "short"
        problems.add("quantity", f"{exc} in {side} {instrument.symbol} on {date}")
    problems.raise_any()
    shares = book.pro_rata(commission, [q for _, q in taken])
    by_id = {lot.pk: lot for lot, _ in held}
    touched = []
    for (lot_id, lot_quantity), lot_commission in zip(taken, shares):
        touched.append(close_trade(by_id[lot_id], user=user, date=date, price=price, quantity=lot_quantity,
                                   commission=lot_commission, reason=reason, now=now, kind=kind))
    return touched


@transaction.atomic
def cancel_trade(trade, *, user, reason="", now=None) -> Trade:
    """Cancel a trade: a new version with status cancelled (the history keeps every earlier one)."""
    trade = _locked(trade)
    if trade.status == TradeStatus.CANCELLED:
        raise JournalError("status", "the trade is already cancelled")
    state = _state(trade)
    old_legs = _legs(state)
    state["status"] = TradeStatus.CANCELLED
    _write_version(trade, state, user=user, kind=ChangeKind.CANCELLED, reason=reason, now=now)
    mark_snapshots_stale(trade.portfolio, book.first_affected_date(old_legs, []))
    return trade


def _locked(trade):
    return Trade.objects.select_for_update().select_related("portfolio", "instrument").get(pk=trade.pk)


def _state(trade):
    """The trade's current state as the dict services edit (exits from its current version)."""
    state = {name: getattr(trade, name) for name in STATE_FIELDS}
    exits = TradeExit.objects.filter(version__trade=trade, version__superseded_at__isnull=True).order_by("date", "id")
    state["exits"] = [Exit(e.date, e.quantity, e.price, e.commission) for e in exits]
    return state


def _legs(state):
    """The legs of a state as hashable tuples (date first), for first_affected_date."""
    if state["status"] == TradeStatus.CANCELLED:
        return []
    who = (state["instrument"].pk, state["direction"])
    entry = (state["entry_date"], "entry", state["quantity"], state["entry_price"], state["entry_commission"], *who)
    return [entry, *((*e.leg(), *who) for e in state["exits"])]


def _exit(value, name, problems):
    """An Exit from a dict, a tuple (date, quantity, price[, commission]) or an Exit. A field that is not
    a number is None in it, its problem added to `problems` named name(attr): exits[0].price, exit_price."""
    if isinstance(value, Exit):
        return value
    if isinstance(value, dict):
        date, quantity, price, commission = (value.get("date"), value.get("quantity"), value.get("price"),
                                             value.get("commission"))
    else:
        date, quantity, price, *rest = value
        commission = rest[0] if rest else 0
    return Exit(date=date, quantity=problems.attempt(_money, quantity, name("quantity")),
                price=problems.attempt(_money, price, name("price")),
                commission=problems.attempt(_money, commission or 0, name("commission")))


def _money(value, field):
    """A Decimal from user input, or JournalError naming the field."""
    if isinstance(value, Decimal):
        number = value
    else:
        try:
            number = Decimal(str(value).strip().replace(",", ""))
        except (InvalidOperation, ValueError):
            raise JournalError(field, f"{value!r} is not a number") from None
    if not number.is_finite():
        raise JournalError(field, f"{value!r} is not a number")
    if number.as_tuple().exponent < -6 and number != number.quantize(SIX):
        raise JournalError(field, f"{value} has more than 6 decimal places")
    return number


def _check(portfolio, state, problems, *, exit_names=None, today=None):
    """Add to `problems` everything the journal cannot hold in `state`, naming each field. Fields that
    could not be read are None there (their problem is already added) and checks needing them are
    skipped. exit_names: how to name exit fields: "last" (close_trade: the new leg is exit_date,
    exit_quantity, ...), "list" (exits[i].date), None."""
    today = today or timezone.localdate()
    instrument = state["instrument"]
    if state["direction"] not in Direction.values:
        problems.add("direction", f"{state['direction']!r} is not long or short")
    if state["quantity"] is not None and state["quantity"] <= 0:
        problems.add("quantity", "must be more than 0")
    if state["entry_price"] is not None and state["entry_price"] <= 0:
        problems.add("entry_price", "must be more than 0")
    if state["entry_commission"] is not None and state["entry_commission"] < 0:
        problems.add("entry_commission", "must not be negative")
    problems.attempt(_check_day, instrument, state["entry_date"], "entry_date", today)
    if state["entry_date"] is not None and state["entry_date"] < portfolio.inception_date:
        problems.add("entry_date", f"{state['entry_date']} is before the portfolio's inception date "
                                   f"{portfolio.inception_date}")
    for i, leg in enumerate(state["exits"]):
        name = _exit_namer(exit_names, i)
        if leg.quantity is not None and leg.quantity <= 0:
            problems.add(name("quantity"), "must be more than 0")
        if leg.price is not None and leg.price <= 0:
            problems.add(name("price"), "must be more than 0")
        if leg.commission is not None and leg.commission < 0:
            problems.add(name("commission"), "must not be negative")
        if leg.date is not None and state["entry_date"] is not None and leg.date < state["entry_date"]:
            problems.add(name("date"), f"{leg.date} is before the entry date {state['entry_date']}")
        else:
            problems.attempt(_check_day, instrument, leg.date, name("date"), today)
    _check_legs(state, problems, exit_names)


def _check_legs(state, problems, exit_names):
    """Add a problem when the exits close more shares than the entry opened (splits undone); only when
    the quantities, the dates and the instrument are known and good."""
    if state["instrument"] is None or state["quantity"] is None or state["quantity"] <= 0:
        return
    if any(leg.quantity is None or leg.quantity <= 0 or leg.date is None for leg in state["exits"]):
        return
    splits = _splits(state["instrument"])
    closed = Decimal(0)
    for i, leg in enumerate(state["exits"]):
        name = _exit_namer(exit_names, i)
        ratio = Decimal(repr(book.split_ratio(splits, state["entry_date"], leg.date)))
        closed += leg.quantity / ratio
        if closed > state["quantity"]:
            left = state["quantity"] - (closed - leg.quantity / ratio)
            held = (left * ratio).normalize()
            problems.add(name("quantity"), f"{plain(leg.quantity)} is more than the {plain(held)} still open")
            return


def _exit_namer(mode, i):
    """How exit i's fields are named: exits[i].price in a list, exit_price for close_trade's new leg."""
    if mode == "list":
        return lambda attr: f"exits[{i}].{attr}"
    return lambda attr: f"exit_{attr}"


def _check_day(instrument, day, field, today):
    """JournalError naming `field` unless `day` is a session of the instrument's exchange, not in the
    future (without an instrument, a weekday)."""
    if day is None:
        raise JournalError(field, "a date is required")
    if day > today:
        raise JournalError(field, f"{day} is in the future")
    if instrument is None:
        # The symbol was not found: its calendar is unknown, but no exchange has a session on a weekend.
        if day.weekday() >= 5:
            raise JournalError(field, f"{day:%a %Y-%m-%d} is a weekend day, not a session")
        return
    exchange = instrument.exchange
    if calendars.calendar_name(exchange) is not None and not calendars.is_session(exchange, day):
        cal = calendars.calendar(calendars.calendar_name(exchange))
        before = cal.date_to_session(day, direction="previous").date()
        after = cal.date_to_session(day, direction="next").date()
        raise JournalError(field, f"{day:%a %Y-%m-%d} is not an {exchange} session "
                                  f"(the sessions either side are {before} and {after})")


def _splits(instrument):
    return list(CorporateAction.objects.filter(instrument=instrument, kind=CorporateAction.Kind.SPLIT,
                                               ratio__isnull=False).order_by("ex_date").values_list("ex_date", "ratio"))


def _derive(portfolio, state):
    """The derived fields of a state: closed quantity, average exit, fees, P&L (trade and base currency)."""
    instrument = state["instrument"]
    splits = _splits(instrument)
    ratios = [book.split_ratio(splits, state["entry_date"], leg.date) for leg in state["exits"]]
    result = book.realised_pnl(
        direction=state["direction"], quantity=state["quantity"], entry_price=state["entry_price"],
        entry_commission=state["entry_commission"],
        exits=[(leg.quantity, leg.price, leg.commission, ratio) for leg, ratio in zip(state["exits"], ratios)])
    derived = {
        "closed_quantity": result["closed_quantity"].quantize(SIX),
        "exit_price": None if result["exit_price"] is None else result["exit_price"].quantize(SIX),
        "exit_date": max((leg.date for leg in state["exits"]), default=None),
        "fees": result["fees"].quantize(SIX),
        "pnl": None if result["pnl"] is None else result["pnl"].quantize(SIX),
        "pnl_pct": result["pnl_pct"],
        "pnl_base": None,
        "pnl_base_missing": "",
    }
    if state["exits"]:
        base = portfolio.base_currency
        missing = []
        entry_rate, why = valuation.fx_rate(instrument.currency, base, state["entry_date"])
        missing += [why] if why else []
        legs = []
        for leg, ratio in zip(state["exits"], ratios):
            rate, why = valuation.fx_rate(instrument.currency, base, leg.date)
            missing += [why] if why else []
            legs.append((leg.quantity, leg.price, leg.commission, ratio, rate))
        pnl_base = book.realised_pnl_base(
            direction=state["direction"], quantity=state["quantity"], entry_price=state["entry_price"],
            entry_commission=state["entry_commission"], entry_rate=entry_rate, exits=legs)
        derived["pnl_base"] = None if pnl_base is None else pnl_base.quantize(SIX)
        derived["pnl_base_missing"] = (missing[0] if missing else "")[:200]
    return derived


def _status(state, derived):
    if state["status"] == TradeStatus.CANCELLED:
        return TradeStatus.CANCELLED
    return TradeStatus.CLOSED if derived["closed_quantity"] >= state["quantity"] else TradeStatus.OPEN


def _write_version(trade, state, *, user, kind, reason, now=None):
    """Stamp the current version superseded, save the trade as `state`, and record the new version."""
    now = now or timezone.now()
    number = 1
    if trade.pk:
        previous = TradeVersion.objects.select_for_update().get(trade=trade, superseded_at__isnull=True)
        # Knowledge times strictly increase per trade, so "known at T" always picks one version.
        now = max(now, previous.knowledge_time + dt.timedelta(microseconds=1))
        previous.superseded_at = now
        previous.save(update_fields=["superseded_at"])
        number = previous.version + 1
    derived = _derive(trade.portfolio, state)
    state = {**state, "status": _status(state, derived)}
    values = {name: state[name] for name in STATE_FIELDS} | derived
    for name, value in values.items():
        setattr(trade, name, value)
    trade.knowledge_time = now
    trade.save()
    version = TradeVersion.objects.create(trade=trade, version=number, knowledge_time=now, changed_by=user,
                                          change_kind=kind, change_reason=(reason or "")[:200], **values)
    TradeExit.objects.bulk_create(TradeExit(version=version, date=leg.date, quantity=leg.quantity, price=leg.price,
                                            commission=leg.commission) for leg in state["exits"])
    return version


def _new_trade_id(symbol, day):
    while True:
        candidate = f"{symbol}-{day:%Y%m%d}-{secrets.token_hex(3).upper()}"
        if not Trade.objects.filter(trade_id=candidate).exists():
            return candidate


def _event_time(instrument, day):
    """When the entry happened, by default: the session's close (midnight UTC for venues without a calendar)."""
    if day is not None and calendars.calendar_name(instrument.exchange) and calendars.is_session(instrument.exchange, day):
        return calendars.session_close(instrument.exchange, day)
    return dt.datetime.combine(day or timezone.localdate(), dt.time(), tzinfo=dt.timezone.utc)


def equity_on(portfolio, day):
    """The book's value at the close of the last session before `day` (what a trade on `day` is sized
    on); the starting cash plus cash movements to `day` when no session of the book precedes it."""
    previous = valuation.valuation_days(portfolio, portfolio.inception_date, day - dt.timedelta(days=1))
    journal = valuation.load_journal(portfolio)
    if not len(previous):
        return float(portfolio.starting_cash) + sum(float(a) for d, a, _ in journal.movements if d <= day)
    frame, _ = valuation.compute_snapshots(journal, start=previous[-1].date(), end=previous[-1].date(),
                                           source="database")
    value = frame["value"].iloc[-1]
    if not math.isfinite(value):
        raise JournalError("target_weight", f"the book has no value on {previous[-1].date()} to size from: "
                                            f"{frame['reason'].iloc[-1]}")
    return float(value)


def _weight(target_weight, direction):
    """A target weight as a float between -1 and 1 (not 0), or JournalError naming target_weight."""
    try:
        weight = float(target_weight)
    except (TypeError, ValueError):
        raise JournalError("target_weight", f"{target_weight!r} is not a number") from None
    if not -1.0 <= weight <= 1.0 or weight == 0:
        raise JournalError("target_weight", "must be a fraction of equity between -1 and 1, not 0")
    if weight < 0 and direction != Direction.SHORT:
        # Never turn a short target into a long trade silently (the direction defaults to long).
        raise JournalError("target_weight", f"{weight:g} is a short target: send direction 'short' with it")
    return weight


def _size(portfolio, weight, price, day):
    """Whole shares for `weight` of the book's equity before `day` at `price` (BR-21)."""
    equity = equity_on(portfolio, day)
    shares, why = book.shares_for_target(equity, price, abs(weight))
    if why:
        raise JournalError("target_weight", why)
    return Decimal(shares)


# --- cash ----------------------------------------------------------------------------------------

SIGNS = {CashMovement.Kind.DEPOSIT: 1, CashMovement.Kind.WITHDRAWAL: -1, CashMovement.Kind.DIVIDEND: 1,
         CashMovement.Kind.FEE: -1, CashMovement.Kind.INTEREST: None}


def signed_amount(kind, amount):
    """The amount of a movement as stored: given positive, signed by its kind (a fee or a withdrawal goes
    out); interest keeps the sign given (negative: interest paid). JournalError naming kind or amount."""
    if kind not in SIGNS:
        raise JournalError("kind", f"{kind!r} is not one of {', '.join(SIGNS)}")
    amount = _money(amount, "amount")
    if amount == 0:
        raise JournalError("amount", "must not be 0")
    sign = SIGNS[kind]
    if sign is None:
        return amount
    if amount < 0:
        label = CashMovement.Kind(kind).label.lower()
        raise JournalError("amount", f"{plain(amount)} is negative: give the amount positive (the kind gives the "
                                     f"sign: a {label} {'goes out' if sign < 0 else 'comes in'})")
    return amount * sign


@transaction.atomic
def add_cash(*, portfolio, user, date, kind, amount, instrument=None, notes="") -> CashMovement:
    """Record a cash movement. Deposits, withdrawals, dividends and fees are given positive and take
    their sign from the kind (a negative one is refused); interest keeps the sign given (negative:
    interest paid)."""
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    problems = Problems()
    amount = problems.attempt(signed_amount, kind, amount)
    if date is None:
        problems.add("date", "a date is required")
    elif date < portfolio.inception_date:
        problems.add("date", f"{date} is before the portfolio's inception date {portfolio.inception_date}")
    elif date > timezone.localdate():
        problems.add("date", f"{date} is in the future")
    if isinstance(instrument, str):
        instrument = problems.attempt(resolve_instrument, instrument, "symbol") if instrument.strip() else None
    problems.raise_any()
    movement = CashMovement.objects.create(portfolio=portfolio, date=date, kind=kind, amount=amount,
                                           instrument=instrument, notes=notes or "", recorded_by=user)
    mark_snapshots_stale(portfolio, date)
    return movement


@transaction.atomic
def void_cash(movement, *, user, reason="") -> CashMovement:
    """Void a cash movement: it stays in the journal (known until now), but no longer counts."""
    movement = CashMovement.objects.select_for_update().select_related("portfolio").get(pk=movement.pk)
    if movement.voided_at is not None:
        raise JournalError("voided_at", "the movement is already void")
    movement.voided_at, movement.voided_by, movement.void_reason = timezone.now(), user, (reason or "")[:200]
    movement.save(update_fields=["voided_at", "voided_by", "void_reason"])
    mark_snapshots_stale(movement.portfolio, movement.date)
    return movement


# --- snapshots -----------------------------------------------------------------------------------

def mark_snapshots_stale(portfolio, day):
    """Snapshots from `day` on must be recomputed: lower the portfolio's mark, and enqueue the update
    when the transaction commits (the task recomputes exactly from the mark)."""
    if day is None:
        return
    Portfolio.objects.filter(pk=portfolio.pk).update(snapshots_stale_from=Case(
        When(snapshots_stale_from__isnull=True, then=day), When(snapshots_stale_from__gt=day, then=day),
        default=F("snapshots_stale_from")))
    from .tasks import update_snapshots

    # robust: a broker that is down leaves the mark; the next daily run or `snapshot` picks it up.
    transaction.on_commit(lambda: update_snapshots.delay(portfolio.pk), robust=True)


def catch_up_snapshots(portfolio):
    """When the stored snapshots end before the newest prices (bars loaded outside the daily chain, e.g.
    `ingest --provider csv`), mark them stale from the first missing session: the update enqueued on
    commit (in process without a broker) stores the missing days, and the summary marks the book on the
    fly meanwhile. Does nothing to a book that is up to date or already waiting for its update; writes
    only the stale mark. Returns the valuation.Lag it found; `portfolio` gets the current mark."""
    lag = valuation.snapshot_lag(portfolio)
    if lag.first_missing is not None and portfolio.snapshots_stale_from is None:
        mark_snapshots_stale(portfolio, lag.first_missing)
        portfolio.refresh_from_db(fields=["snapshots_stale_from"])  # cleared already if the update ran
    return lag


@dataclass
class SnapshotResult:
    """What snapshot_portfolio did: the days written (first..last), how many, and the unvalued ones."""

    portfolio: str
    start: dt.date | None = None
    end: dt.date | None = None
    written: int = 0
    deleted: int = 0
    unvalued: list = field(default_factory=list)  # [(date, reason)]


@transaction.atomic
def snapshot_portfolio(*, portfolio, since=None, end=None) -> SnapshotResult:
    """Mark the book to market on each session and store the snapshots that are missing or stale.

    The days recomputed start at the earliest of `since`, the stale mark (a back-dated change) and the
    day after the last stored snapshot; they end at the last day with market data
    (valuation.last_market_day) or `end`. Snapshots before the start are kept as they are and seed
    the computation (value, cumulative return, the returns of the rolling window), so the stored series
    is what a full recomputation gives. Clears the stale mark it covered.
    """
    portfolio = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
    result = SnapshotResult(portfolio=portfolio.name)
    journal = valuation.load_journal(portfolio)
    end = end or valuation.last_market_day(portfolio, journal.instrument_ids)
    stored = PortfolioSnapshot.objects.filter(portfolio=portfolio)
    # Rows before the inception (it moved) or after the data's end are not the book's any more.
    result.deleted += stored.filter(date__lt=portfolio.inception_date).delete()[0]
    last = stored.order_by("-date").values_list("date", flat=True).first()
    # `since` can only start the recomputation earlier: a stale mark or a gap before it is covered too.
    start = min(d for d in (since, portfolio.snapshots_stale_from,
                            last + dt.timedelta(days=1) if last else portfolio.inception_date) if d)
    start = max(start, portfolio.inception_date)
    prior = _prior(portfolio, start)
    frame, _ = valuation.compute_snapshots(journal, start=start, end=end, prior=prior)
    result.deleted += stored.filter(date__gte=start).delete()[0]
    rows = [_snapshot_row(portfolio, day, row) for day, row in zip(frame.index, frame.itertuples(index=False))]
    PortfolioSnapshot.objects.bulk_create(rows, batch_size=1000)
    result.written = len(rows)
    if rows:
        result.start, result.end = rows[0].date, rows[-1].date
    result.unvalued = [(r.date, r.unvalued_reason) for r in rows if r.unvalued_reason]
    # Clear the mark only if nothing marked an earlier day meanwhile (rows are locked, so nothing did).
    Portfolio.objects.filter(pk=portfolio.pk, snapshots_stale_from__gte=start).update(snapshots_stale_from=None)
    return result


def _prior(portfolio, start):
    """The stored history before `start` a computation continues from (None: start from the inception)."""
    before = list(PortfolioSnapshot.objects.filter(portfolio=portfolio, date__lt=start).order_by("-date")
                  .values_list("date", "total_value", "flows", "daily_return", "cumulative_return")
                  [:marks.ROLLING_WINDOW * 3])
    if not before:
        return None
    pending = Decimal(0)
    value = cumulative = None
    for day, total, flows, _, cum in before:
        if total is not None:
            value, cumulative = float(total) + float(pending), cum
            break
        pending += flows
    if value is None:
        # Nothing valued in the window looked at: recompute from the inception instead.
        return None
    returns = [r for _, _, _, r, _ in reversed(before) if r is not None and math.isfinite(r)]
    return valuation.Prior(value=value, returns=returns[-(marks.ROLLING_WINDOW - 1):],
                           cumulative=cumulative or 0.0, last_day=before[0][0])


def _snapshot_row(portfolio, day, row):
    return PortfolioSnapshot(
        portfolio=portfolio, date=day.date(), total_value=_stored(row.value), cash=_stored(row.cash),
        invested=_stored(row.invested), flows=_stored(row.flows) or Decimal(0), unvalued_reason=row.reason[:300],
        daily_return=_float(row.daily_return), cumulative_return=_float(row.cumulative_return),
        volatility_21d=_float(row.volatility), sharpe_21d=_float(row.sharpe))


def _stored(value):
    """A float64 mark as the Decimal stored (6 places), None for NaN."""
    if value is None or not math.isfinite(value):
        return None
    return Decimal(repr(round(float(value), 6))).quantize(SIX)


def _float(value):
    return float(value) if value is not None and math.isfinite(value) else None


def snapshot_portfolios(*, names=None, since=None, exchange=None) -> list:
    """snapshot_portfolio for each portfolio (named ones, or all; with `exchange`, those marked on its
    calendar or trading its instruments). Returns the SnapshotResults; one portfolio's failure is
    logged and re-raised after the others ran."""
    portfolios = Portfolio.objects.order_by("name")
    if names:
        portfolios = portfolios.filter(name__in=names)
    if exchange:
        from marketdata.models import CALENDAR_OF

        venues = [v for v, name in CALENDAR_OF.items() if name == exchange]
        currencies = [c for c, cal in CALENDAR_OF_CURRENCY.items() if cal == exchange]
        portfolios = portfolios.filter(
            Q(base_currency__in=currencies) | Q(trades__instrument__exchange__in=venues)).distinct()
    results, failures = [], []
    for portfolio in portfolios:
        try:
            results.append(snapshot_portfolio(portfolio=portfolio, since=since))
        except Exception as exc:  # one book's problem must not stop the others' marks
            logger.exception("snapshot of portfolio %s failed", portfolio.name)
            failures.append((portfolio.name, exc))
    if failures:
        name, exc = failures[0]
        raise RuntimeError(f"snapshot of {name} failed: {exc}") from exc
    return results


# --- import --------------------------------------------------------------------------------------

# The fields of an import row that say what happened (trades.imports.Row), for the duplicate-file check.
IMPORT_FINGERPRINT = ("date", "action", "symbol", "quantity", "price", "commission", "amount", "trade_id")


@dataclass
class ImportResult:
    """What import_trades wrote: trades opened, exit legs recorded, cash movements, the first date."""

    portfolio: str
    rows: int = 0
    trades: int = 0
    exits: int = 0
    cash: int = 0
    first_date: dt.date | None = None


def import_trades(*, portfolio, data, user=None, name=None, max_rows=None, again=False) -> ImportResult:
    """Apply a trade file (trades.imports format) to `portfolio` in one transaction: all rows or none.

    Rows are applied in date order (file order within a day): buy and short open a trade, sell and
    cover close open trades first in, first out, cash rows record movements. Every row is tried (each
    in its own savepoint, so a refused one leaves nothing behind) and every problem collected; then
    ImportRejected lists them by row ("row N: column: reason", at most MAX_ERRORS and how many more)
    and the whole file is rolled back: nothing written. max_rows: refuse a longer file (None: no limit).
    A file with the same executions as one already imported into `portfolio` (whatever its name, line
    endings, row order or number format) is refused, naming when and by whom, unless `again`.
    """
    from .errors import ImportRejected
    from .imports import CLOSES, MAX_ERRORS, OPENS, read_rows

    rows = read_rows(data, name=name, max_rows=max_rows)
    digest = _executions_digest(rows)
    earlier = None if again else portfolio.imports.filter(sha256=digest).select_related("imported_by").first()
    if earlier:
        who = f" by {earlier.imported_by.username}" if earlier.imported_by else ""
        raise ImportRejected([f"this file was already imported into {portfolio.name} on "
                              f"{timezone.localtime(earlier.imported_at):%Y-%m-%d %H:%M}{who} ({earlier.rows} rows); "
                              "importing it again would book its executions twice. Import it again only if "
                              "they really happened twice"], file=name)
    result = ImportResult(portfolio=portfolio.name, rows=len(rows))
    source = name or "a file"
    problems = []
    for row in rows:
        if row.problems:
            problems += [(row.number, text) for text in row.problems]
            problems += [(row.number, f"{IMPORT_COLUMN.get(f, f)}: {m}") for f, m in _bad_row_problems(portfolio, row)]
    good = sorted((row for row in rows if not row.problems), key=lambda r: (r.date, r.number))
    # A statement that repeats executions already in the journal, next to new ones.
    booked = [] if again else _already_booked(portfolio, good, OPENS, CLOSES)
    problems += booked
    with transaction.atomic():
        for row in good:
            try:
                with transaction.atomic():
                    _apply(portfolio, row, user, source, result, OPENS, CLOSES)
            except JournalError as exc:
                problems += [(row.number, f"{IMPORT_COLUMN.get(f, f)}: {m}") for f, m in exc.problems]
        if problems:
            lines = [f"row {number}: {text}" for number, text in sorted(problems, key=lambda p: p[0])]
            if booked:
                repeat = f"{len(booked)} rows repeat" if len(booked) > 1 else "1 row repeats"
                lines.insert(0, f"{repeat} executions already in the journal: remove them, or import with "
                                "'Import it even if…' (--again) if they really happened twice")
            raise ImportRejected(lines[:MAX_ERRORS], file=name, more=max(len(lines) - MAX_ERRORS, 0))
        TradeImport.objects.create(portfolio=portfolio, sha256=digest, name=(name or "")[:255], rows=len(rows),
                                   imported_by=user)
    result.first_date = min(r.date for r in rows)
    return result


def _already_booked(portfolio, rows, opens, closes):
    """(row number, problem) for each row the journal already holds: an entry with the same instrument,
    side, date, quantity and price; exits of the same instrument, side, date and price covering its
    quantity; a live cash movement of the same date, kind and amount. Each recorded one matches one row.
    Three queries over the file's dates, whatever its length."""
    if not rows:
        return []
    first, last = min(r.date for r in rows), max(r.date for r in rows)
    instruments = {}
    for text in {r.symbol for r in rows if not r.is_cash}:
        try:
            instruments[text] = resolve_instrument(text).pk
        except JournalError:
            pass  # the row is refused for it when applied
    entries = {}
    for trade_id, *key in (Trade.objects.live().filter(portfolio=portfolio, entry_date__range=(first, last))
                           .values_list("trade_id", "instrument_id", "direction", "entry_date", "quantity",
                                        "entry_price")):
        entries.setdefault(tuple(key), []).append(trade_id)
    exited = {}
    for *key, quantity in (TradeExit.objects.filter(version__trade__portfolio=portfolio, version__superseded_at=None,
                                                    date__range=(first, last))
                           .exclude(version__trade__status=TradeStatus.CANCELLED)
                           .values_list("version__trade__instrument_id", "version__trade__direction", "date", "price",
                                        "quantity")):
        exited[tuple(key)] = exited.get(tuple(key), Decimal(0)) + quantity
    cash = {}
    for key in (CashMovement.objects.live().filter(portfolio=portfolio, date__range=(first, last))
                .values_list("date", "kind", "amount")):
        cash[(key[0], key[1], abs(key[2]))] = cash.get((key[0], key[1], abs(key[2])), 0) + 1
    found = []
    for row in rows:
        if row.is_cash:
            key = (row.date, row.action, abs(row.amount))
            if cash.get(key):
                cash[key] -= 1
                found.append((row.number, f"already in the journal: a {row.action} of {plain(abs(row.amount))} on "
                                          f"{row.date}"))
            continue
        instrument = instruments.get(row.symbol)
        if instrument is None:
            continue
        if row.action in opens:
            ids = entries.get((instrument, opens[row.action], row.date, row.quantity, row.price))
            if ids:
                found.append((row.number, f"already in the journal: {row.action} {plain(row.quantity)} {row.symbol} @ "
                                          f"{plain(row.price)} on {row.date} (trade {ids.pop(0)})"))
        else:
            key = (instrument, closes[row.action], row.date, row.price)
            if exited.get(key, Decimal(0)) >= row.quantity:
                exited[key] -= row.quantity
                found.append((row.number, f"already in the journal: {row.action} {plain(row.quantity)} {row.symbol} @ "
                                          f"{plain(row.price)} on {row.date} (recorded exits)"))
    return found


def _executions_digest(rows):
    """sha256 of what a trade file says happened: each row's date, action, symbol, numbers (as values:
    100 = 100.00) and trade id, in any order. A file re-saved by Excel (CRLF, 100.00) has the same digest."""
    def text(value):
        if isinstance(value, Decimal):
            return format(value.normalize(), "f")
        return "" if value is None else str(value).strip().upper()

    lines = sorted("|".join(text(getattr(row, field)) for field in IMPORT_FINGERPRINT) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _bad_row_problems(portfolio, row):
    """What the journal can still say of a row that will not be applied: its symbol and its date."""
    from .imports import CASH

    problems = Problems()
    instrument = None
    if row.symbol and row.action and (row.action not in CASH or row.action == CashMovement.Kind.DIVIDEND):
        instrument = problems.attempt(resolve_instrument, row.symbol)
    if row.date is not None:
        if row.date < portfolio.inception_date:
            problems.add("date", f"{row.date} is before the portfolio's inception date {portfolio.inception_date}")
        elif row.action not in CASH:
            problems.attempt(_check_day, instrument, row.date, "date", timezone.localdate())
    named = {text.split(":", 1)[0] for text in row.problems}
    return [(name, text) for name, text in problems.items if IMPORT_COLUMN.get(name, name) not in named]


# The journal's field names as the file's columns, for the messages of an import.
IMPORT_COLUMN = {"entry_date": "date", "exit_date": "date", "entry_price": "price", "exit_price": "price",
                 "entry_commission": "commission", "exit_commission": "commission", "exit_quantity": "quantity"}


def _apply(portfolio, row, user, source, result, opens, closes):
    reason = f"imported from {source}, row {row.number}"
    if row.is_cash:
        add_cash(portfolio=portfolio, user=user, date=row.date, kind=row.action, amount=row.amount,
                 instrument=row.symbol or None, notes=row.notes)
        result.cash += 1
    elif row.action in opens:
        record_trade(portfolio=portfolio, user=user, symbol=row.symbol, direction=opens[row.action],
                     quantity=row.quantity, entry_date=row.date, entry_price=row.price,
                     entry_commission=row.commission, strategy_name=row.strategy, signal_ref=row.signal,
                     notes=row.notes, trade_id=row.trade_id or None, kind=ChangeKind.IMPORTED, reason=reason)
        result.trades += 1
    else:
        touched = close_position(portfolio=portfolio, user=user, symbol=row.symbol, direction=closes[row.action],
                                 date=row.date, price=row.price, quantity=row.quantity, commission=row.commission,
                                 reason=reason, kind=ChangeKind.IMPORTED)
        result.exits += len(touched)
