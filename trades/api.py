"""Journal and portfolio endpoints (the old system's paths): trades with history and `as_of`, the summary,
the snapshots, and their CSV exports. Every trader sees only their own portfolios; staff see all."""
import datetime as dt
from typing import Optional

from django.conf import settings
from django.db.models import Prefetch
from ninja import Query, Router, Schema, Status
from ninja.errors import ValidationError
from pydantic import Field

from parakeet.lazy import lazy_module

from . import exports, filters, services
from .errors import JournalError
from .filters import TradeQuery
from .models import Portfolio, Trade, TradeVersion, no_portfolio
from .schemas import (
    CancelIn, Message, SnapshotsOut, SummaryOut, TradeIn, TradeOut, TradePage, TradePatch,
    ValidationErrorOut, VersionOut,
)

summary = lazy_module("trades.summary")  # pandas: loaded by the first summary or snapshots request
router = Router()

ERRORS = {401: Message, 403: Message, 422: ValidationErrorOut}
PORTFOLIO = ("The portfolio: its id (a number that is the id of a portfolio you can see) or its name; may be "
             "left out when you have one")
AS_OF = "Knowledge time: the journal as known then, marked on the fly"
ONE = {**ERRORS, 404: Message}


# --- helpers -------------------------------------------------------------------------------------

def invalid(loc, message):
    """A 422 in ninja's own shape: [{type, loc, msg}], loc naming where the bad input was."""
    return ValidationError([{"type": "value_error", "loc": list(loc), "msg": message}])


def body_error(exc: JournalError):
    """A 422 listing every problem the journal found, each with the body field it is about."""
    return ValidationError([{"type": "value_error", "loc": ["body", "payload", field], "msg": problem}
                            for field, problem in exc.problems])


def query_error(exc: JournalError):
    return ValidationError([{"type": "value_error", "loc": ["query", field], "msg": problem}
                            for field, problem in exc.problems])


def parse_as_of(text):
    try:
        return filters.parse_as_of(text)
    except JournalError as exc:
        raise query_error(exc) from None


def pick_portfolio(user, name, where):
    """The portfolio the user can see that `name` gives (its id or its name), or their only own one when
    none is given."""
    visible = Portfolio.objects.visible_to(user)
    if name and name.strip():
        found = visible.pick(name)
        if found is None:
            raise invalid(where, no_portfolio(name))
        return found
    own = list(Portfolio.objects.filter(owner=user).order_by("name")[:10])
    if len(own) == 1:
        return own[0]
    if not own:
        raise invalid(where, "you have no portfolio yet: create one on the site, then record trades in it")
    raise invalid(where, f"you have several portfolios ({', '.join(p.name for p in own)}); say which")


def get_trade(user, trade_id):
    trade = (Trade.objects.visible_to(user).select_related("portfolio", "instrument").filter(pk=trade_id).first())
    if trade is None:
        raise Trade.DoesNotExist(f"no trade with id {trade_id}")
    return trade


def _exits(exits):
    return [{"date": e.date, "quantity": e.quantity, "price": e.price, "commission": e.commission} for e in exits]


def trade_out(row, *, trade=None, exits=()):
    """A TradeOut dict from a Trade (with its current version) or a TradeVersion (with its trade)."""
    trade = trade or row
    instrument, portfolio = row.instrument, trade.portfolio
    return {
        "id": trade.pk, "trade_id": trade.trade_id, "portfolio": portfolio.name,
        "version": getattr(row, "version_number", None) or getattr(row, "version", None),
        "symbol": row.symbol, "exchange": instrument.exchange, "instrument": instrument.key,
        "currency": instrument.currency, "base_currency": portfolio.base_currency, "direction": row.direction,
        "status": row.status, "quantity": row.quantity, "open_quantity": row.open_quantity,
        "entry_date": row.entry_date, "entry_price": row.entry_price, "entry_commission": row.entry_commission,
        "exits": _exits(exits), "exit_date": row.exit_date, "exit_price": row.exit_price, "fees": row.fees,
        "pnl": row.pnl, "pnl_pct": row.pnl_pct, "pnl_base": row.pnl_base,
        "pnl_base_missing": row.pnl_base_missing or None, "strategy": row.strategy_name,
        "signal_ref": row.signal_ref, "notes": row.notes, "event_time": row.event_time,
        "knowledge_time": row.knowledge_time,
    }


def current_out(trades):
    """TradeOut dicts for Trade rows: their current versions' numbers and exits in two queries."""
    ids = [t.pk for t in trades]
    versions = {v.trade_id: v for v in TradeVersion.objects.filter(trade_id__in=ids, superseded_at__isnull=True)
                .prefetch_related("exits").only("id", "trade_id", "version")}
    out = []
    for t in trades:
        version = versions.get(t.pk)
        t.version_number = version.version if version else None
        out.append(trade_out(t, exits=list(version.exits.all()) if version else []))
    return out


def version_out(versions):
    return [trade_out(v, trade=v.trade, exits=list(v.exits.all())) for v in versions]


# --- trades --------------------------------------------------------------------------------------

@router.get("/trades", response={200: TradePage, **ERRORS}, tags=["trades"])
def list_trades(request, query: TradeQuery = Query(...)):
    """Trades of the portfolios you can see, newest entry first, a page at a time.

    Pages: `page` (from 1) and `page_size` (default 50, at most 500), or the old `limit` and `offset`;
    a page past the end is empty. `as_of` answers with the versions known at that time (trades
    recorded later are absent, later corrections not applied).
    """
    as_of = parse_as_of(query.as_of)
    try:
        rows = filters.filter_trades(request.user, query, as_of)
        start, size = filters.page_window(query, settings.NINJA_PAGINATION_PER_PAGE)
    except JournalError as exc:
        raise query_error(exc) from None
    page = list(rows[start:start + size])
    items = current_out(page) if as_of is None else version_out(page)
    return {"items": items, "count": rows.count(), "as_of": as_of}


@router.get("/trades/export", response={200: None, **ERRORS}, tags=["trades"])
def export_trades(request, query: TradeQuery = Query(...)):
    """The trades of the list (same filters, every page) as CSV that opens in Excel: UTF-8 with a BOM."""
    as_of = parse_as_of(query.as_of)
    try:
        rows = filters.filter_trades(request.user, query, as_of)
    except JournalError as exc:
        raise query_error(exc) from None
    return exports.trades_csv_response(rows, as_of=as_of)


@router.post("/trades", response={201: TradeOut, **ERRORS}, tags=["trades"])
def create_trade(request, payload: TradeIn):
    """Record a trade (version 1). 422 naming the field for a bad symbol, a date that is not a session
    or is before the entry, an exit larger than the quantity, less than one share from target_weight."""
    portfolio = pick_portfolio(request.user, payload.portfolio, ["body", "payload", "portfolio"])
    try:
        trade = services.record_trade(
            portfolio=portfolio, user=request.user, symbol=payload.symbol, direction=payload.direction,
            quantity=payload.quantity, target_weight=payload.target_weight, entry_date=payload.entry_date,
            entry_price=payload.entry_price, entry_commission=payload.entry_commission, exits=_exits_in(payload),
            strategy_name=payload.strategy, signal_ref=payload.signal_ref, notes=payload.notes,
            trade_id=payload.trade_id, reason=payload.reason)
    except JournalError as exc:
        raise body_error(exc) from None
    return Status(201, current_out([get_trade(request.user, trade.pk)])[0])


def _exits_in(payload, quantity=None):
    if payload.exits is not None:
        return [e.dict() for e in payload.exits]
    if payload.exit_date:
        # The old single exit closes the whole trade.
        return [{"date": payload.exit_date, "quantity": quantity or payload.quantity, "price": payload.exit_price,
                 "commission": payload.exit_commission}]
    return []


@router.get("/trades/{int:trade_id}", response={200: TradeOut, **ONE}, tags=["trades"])
def read_trade(request, trade_id: int, as_of: Optional[str] = None):
    """One trade as known now, or at `as_of` (404 when it was not recorded yet then)."""
    trade = get_trade(request.user, trade_id)
    moment = parse_as_of(as_of)
    if moment is None:
        return current_out([trade])[0]
    version = (TradeVersion.objects.known_at(moment).filter(trade=trade).select_related("trade__portfolio", "instrument")
               .prefetch_related("exits").first())
    if version is None:
        raise TradeVersion.DoesNotExist(f"trade {trade_id} was not recorded yet at {moment.isoformat()}")
    return version_out([version])[0]


@router.put("/trades/{int:trade_id}", response={200: TradeOut, **ONE}, tags=["trades"])
def replace_trade(request, trade_id: int, payload: TradeIn):
    """Replace a trade's fields (a new version; exits as given, none if left out). Staff changing another
    trader's trade is recorded as a correction, with who made it."""
    trade = get_trade(request.user, trade_id)
    if payload.portfolio and payload.portfolio.strip() != trade.portfolio.name:
        raise invalid(["body", "payload", "portfolio"],
                      "a trade cannot move to another portfolio; cancel it and record it there")
    if payload.target_weight is not None or payload.quantity is None:
        raise invalid(["body", "payload", "quantity"], "PUT needs the quantity (target_weight sizes new trades only)")
    changes = {
        "symbol": payload.symbol, "direction": payload.direction, "quantity": payload.quantity,
        "entry_date": payload.entry_date, "entry_price": payload.entry_price,
        "entry_commission": payload.entry_commission, "exits": _exits_in(payload),
        "strategy_name": payload.strategy, "signal_ref": payload.signal_ref, "notes": payload.notes,
    }
    try:
        services.revise_trade(trade, user=request.user, changes=changes, reason=payload.reason)
    except JournalError as exc:
        raise body_error(exc) from None
    return current_out([get_trade(request.user, trade_id)])[0]


@router.patch("/trades/{int:trade_id}", response={200: TradeOut, **ONE}, tags=["trades"])
def update_trade(request, trade_id: int, payload: TradePatch):
    """Change the fields given (a new version). `exit_date` + `exit_price` (+ `exit_quantity`, default all
    still open) record an exit: the old clients' way to close a trade, and a partial exit."""
    trade = get_trade(request.user, trade_id)
    given = payload.dict(exclude_unset=True)
    names = {"strategy": "strategy_name"}
    changes = {names.get(k, k): v for k, v in given.items()
               if k not in ("exit_date", "exit_price", "exit_quantity", "exit_commission", "reason")}
    if "exits" in changes:
        changes["exits"] = [e.dict() for e in payload.exits]
    try:
        if changes:
            services.revise_trade(trade, user=request.user, changes=changes, reason=payload.reason)
        if payload.exit_date:
            services.close_trade(trade, user=request.user, date=payload.exit_date, price=payload.exit_price,
                                 quantity=payload.exit_quantity, commission=payload.exit_commission,
                                 reason=payload.reason)
    except JournalError as exc:
        raise body_error(exc) from None
    return current_out([get_trade(request.user, trade_id)])[0]


@router.delete("/trades/{int:trade_id}", response={200: TradeOut, **ONE}, tags=["trades"])
def cancel_trade(request, trade_id: int, payload: CancelIn = None):
    """Cancel a trade: never a hard delete, a new version with status cancelled (the history keeps all)."""
    trade = get_trade(request.user, trade_id)
    try:
        services.cancel_trade(trade, user=request.user, reason=payload.reason if payload else "")
    except JournalError as exc:
        raise body_error(exc) from None
    return current_out([get_trade(request.user, trade_id)])[0]


@router.get("/trades/{int:trade_id}/history", response={200: list[VersionOut], **ONE}, tags=["trades"])
def trade_history(request, trade_id: int):
    """Every version of a trade, oldest first: what changed, when it became known, who changed it."""
    trade = get_trade(request.user, trade_id)
    versions = (trade.versions.select_related("trade__portfolio", "instrument", "changed_by")
                .prefetch_related(Prefetch("exits")).order_by("version"))
    out = []
    for v in versions:
        out.append({**trade_out(v, trade=trade, exits=list(v.exits.all())), "superseded_at": v.superseded_at,
                    "change_kind": v.change_kind, "changed_by": v.changed_by.username if v.changed_by else None,
                    "change_reason": v.change_reason})
    return out


# --- portfolio -----------------------------------------------------------------------------------

@router.get("/portfolio/summary", response={200: SummaryOut, **ERRORS}, tags=["portfolio"])
def portfolio_summary(request, portfolio: Optional[str] = Query(None, description=PORTFOLIO),
                      as_of: Optional[str] = Query(None, description=AS_OF)):
    """Value, cash, invested, returns, day/week/month P&L, open positions, win rate, best and worst trade,
    P&L by symbol and the risk metrics, as of the last valued day (or as known at `as_of`)."""
    book = pick_portfolio(request.user, portfolio, ["query", "portfolio"])
    moment = parse_as_of(as_of)
    # Prices newer than the stored snapshots (a file loaded outside the daily chain) mark them stale.
    lag = services.catch_up_snapshots(book) if moment is None else None
    return summary.portfolio_summary(book, as_of=moment, lag=lag)


class SnapshotQuery(Schema):
    portfolio: Optional[str] = Field(None, description=PORTFOLIO)
    start: Optional[dt.date] = None
    end: Optional[dt.date] = None
    as_of: Optional[str] = Field(None, description=AS_OF)


def _snapshots(request, query):
    if query.start and query.end and query.start > query.end:
        raise invalid(["query", "start"], f"start {query.start} is after end {query.end}")
    book = pick_portfolio(request.user, query.portfolio, ["query", "portfolio"])
    as_of = parse_as_of(query.as_of)
    if as_of is None:
        services.catch_up_snapshots(book)
    frame, how, _, _ = summary.snapshot_frame(book, as_of=as_of, start=query.start, end=query.end)
    return book, as_of, frame, how


@router.get("/portfolio/snapshots", response={200: SnapshotsOut, **ERRORS}, tags=["portfolio"])
def portfolio_snapshots(request, query: SnapshotQuery = Query(...)):
    """The daily marks (value, cash, invested, flows, time-weighted return, cumulative return, rolling
    21-day volatility and Sharpe), oldest first. An unvalued day has null values and says why."""
    book, as_of, frame, how = _snapshots(request, query)
    items = summary.snapshot_rows(frame)
    return {"portfolio": book.name, "base_currency": book.base_currency, "as_of": as_of, "computed": how,
            "count": len(items), "items": items}


@router.get("/portfolio/snapshots/export", response={200: None, **ERRORS}, tags=["portfolio"])
def export_snapshots(request, query: SnapshotQuery = Query(...)):
    """The snapshots as CSV for Excel (UTF-8 with a BOM)."""
    book, as_of, frame, _ = _snapshots(request, query)
    return exports.snapshots_csv_response(book, summary.snapshot_rows(frame))
