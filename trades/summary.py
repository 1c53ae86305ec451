"""What a portfolio is worth and how it got there: the summary and snapshot reads of the API and pages.

The current answer reads the stored snapshots; an `as_of` answer (what was known at a moment), or one
asked while snapshots wait to be recomputed, marks the journal as known then on the fly with the same
code (valuation.compute_snapshots), without writing anything.
"""
from decimal import Decimal

import numpy as np
import pandas as pd

from quant import metrics
from quant import portfolio as book

from . import valuation
from .models import CashMovement, PortfolioSnapshot, TradeStatus

SIX = Decimal("0.000001")
STORED_FIELDS = ("date", "total_value", "cash", "invested", "flows", "unvalued_reason", "daily_return",
                 "cumulative_return", "volatility_21d", "sharpe_21d")


def stored_frame(portfolio, start=None, end=None):
    """The stored snapshots as the frame compute_snapshots returns (SNAPSHOT_COLUMNS, by date)."""
    rows = PortfolioSnapshot.objects.filter(portfolio=portfolio)
    if start:
        rows = rows.filter(date__gte=start)
    if end:
        rows = rows.filter(date__lte=end)
    frame = pd.DataFrame(list(rows.order_by("date").values_list(*STORED_FIELDS)),
                         columns=["date", "value", "cash", "invested", "flows", "reason", "daily_return",
                                  "cumulative_return", "volatility", "sharpe"])
    for column in ("value", "cash", "invested", "flows", "daily_return", "cumulative_return", "volatility", "sharpe"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")))
    return frame[valuation.SNAPSHOT_COLUMNS]


def snapshot_frame(portfolio, *, as_of=None, start=None, end=None):
    """(frame, how, journal, holdings): the daily snapshots answered for `as_of` (None: now).

    how is "stored" or "on_the_fly"; holdings are the last day's (only when computed, else None).
    """
    journal = valuation.load_journal(portfolio, as_of)
    stale = portfolio.snapshots_stale_from is not None
    if as_of is None and not stale and PortfolioSnapshot.objects.filter(portfolio=portfolio).exists():
        return stored_frame(portfolio, start, end), "stored", journal, None
    today = as_of.date() if as_of is not None else None
    last = valuation.last_market_day(portfolio, journal.instrument_ids, today=today)
    frame, holdings = valuation.compute_snapshots(journal, start=portfolio.inception_date, end=last)
    if start:
        frame = frame[frame.index >= pd.Timestamp(start)]
    if end:
        frame = frame[frame.index <= pd.Timestamp(end)]
    return frame, "on_the_fly", journal, holdings


def _money(value):
    """A float mark as a Decimal to the cent's hundredth-of-a-millionth (6 places), None for NaN."""
    if value is None or not np.isfinite(value):
        return None
    return Decimal(repr(round(float(value), 6))).quantize(Decimal("0.000001"))


def _float(value):
    return float(value) if value is not None and np.isfinite(value) else None


def snapshot_rows(frame):
    """The frame as SnapshotOut dicts."""
    rows = []
    for day, r in zip(frame.index, frame.itertuples(index=False)):
        rows.append({
            "date": day.date(), "value": _money(r.value), "cash": _money(r.cash), "invested": _money(r.invested),
            "flows": _money(r.flows) or Decimal(0), "daily_return": _float(r.daily_return),
            "cumulative_return": _float(r.cumulative_return), "volatility_21d": _float(r.volatility),
            "sharpe_21d": _float(r.sharpe), "unvalued_reason": r.reason or None,
        })
    return rows


def positions(journal, day, holdings=None):
    """The open positions on `day`, one per instrument and direction, with unrealised P&L in the base.

    holdings: the last day's holdings from a computation that ended on `day` (for its prices and rates);
    without them the day is marked from the database (each instrument's last close, the FX rates).
    Cost is the open shares' entry cost with their share of the entry commission, at the entry day's
    rate, so realised + unrealised + income = value - starting cash - net flows, to the cent.
    """
    base = journal.portfolio.base_currency
    open_trades = [t for t in journal.trades if t.status == TradeStatus.OPEN and t.open_quantity > 0]
    if not open_trades or day is None:
        return []
    if holdings is None:
        # Only the open trades hold shares on `day`: marking them alone gives the same holdings (the
        # closed ones net to nothing) from a tenth of the legs.
        held_only = valuation.Journal(portfolio=journal.portfolio, trades=open_trades, movements=[], as_of=journal.as_of)
        _, holdings = valuation.compute_snapshots(held_only, start=day, end=day, source="database")
    held = {row.key: row for row in holdings.itertuples(index=False)} if len(holdings) else {}
    currencies = sorted({t.currency for t in open_trades})
    entry_days = pd.DatetimeIndex(sorted({pd.Timestamp(t.entry_date) for t in open_trades}))
    fx = valuation.database_fx(currencies, base, entry_days[0].date(), day)
    rates = book.fx_rates(fx, currencies, entry_days, base)
    rate_of = {(c, d.date()): rates[i, j] for i, d in enumerate(entry_days) for j, c in enumerate(currencies)}
    splits = valuation.splits_of({t.instrument_id for t in open_trades})
    groups = {}
    for t in open_trades:
        groups.setdefault((t.key, t.direction), []).append(t)
    out = []
    for (key, direction), lots in sorted(groups.items()):
        # Shares held on `day`: each lot's open entry shares times the splits since its entry; the average
        # entry price is on the same basis (what the open lots cost over the shares they are now), so
        # 60 bought at 411.23 before 7:1 and 4:1 splits are 1,680 held at 14.686786.
        now_held = sum((t.open_quantity * Decimal(repr(book.split_ratio(splits.get(key, []), t.entry_date, day)))
                        for t in lots), Decimal(0))
        average = sum((t.open_quantity * t.entry_price for t in lots), Decimal(0)) / now_held
        shares = now_held.quantize(SIX)
        sign = 1 if direction == book.LONG else -1
        cost, cost_known = Decimal(0), True
        for t in lots:
            rate = rate_of.get((t.currency, t.entry_date))
            if rate is None or not np.isfinite(rate):
                cost_known = False
                continue
            # Paid for a long (commission on top); received for a short (commission taken off).
            share = t.open_quantity / t.quantity
            cost += (t.open_quantity * t.entry_price + sign * t.entry_commission * share) * Decimal(repr(float(rate)))
        row = held.get(key)
        value = None
        if row is not None and np.isfinite(row.price) and np.isfinite(row.rate):
            value = sign * float(shares) * row.price * row.rate
        unrealised = None
        if value is not None and cost_known:
            # A long gains what it is worth over its cost; a short what it got (cost) over what it owes.
            unrealised = _money(value) - cost if sign > 0 else _money(value) + cost
        out.append({
            "instrument": key, "symbol": lots[0].symbol, "currency": lots[0].currency, "direction": direction,
            "quantity": shares, "lots": len(lots), "average_price": average.quantize(SIX),
            "price": _money(row.price) if row is not None else None,
            "price_date": row.price_date.date() if row is not None and pd.notna(row.price_date) else None,
            "fx_rate": _float(row.rate) if row is not None else None,
            "market_value": _money(value) if value is not None else None,
            "cost": cost.quantize(SIX),
            "unrealised_pnl": unrealised.quantize(SIX) if unrealised is not None else None,
            "unrealised_pct": float(unrealised / cost) if unrealised is not None and cost else None,
            "weight": None,
        })
    return out


def _period(frame, since, initial):
    pnl, start, twr = book.period_pnl(frame["value"], frame["flows"], since, initial)
    return {"since": start, "pnl": _money(pnl), "twr": twr}


def _periods(frame, day, initial):
    """Day (since the previous valued close), week (7 calendar days) and month (one calendar month) P&L."""
    if day is None:
        empty = {"since": None, "pnl": None, "twr": None}
        return {"day": empty, "week": empty, "month": empty}
    end = pd.Timestamp(day)
    valued = frame.index[np.isfinite(frame["value"].to_numpy())]
    previous = valued[-2] if len(valued) > 1 else end - pd.Timedelta(days=1)
    return {"day": _period(frame, previous, initial),
            "week": _period(frame, end - pd.Timedelta(days=7), initial),
            "month": _period(frame, end - pd.DateOffset(months=1), initial)}


def _brief(t):
    return {"id": t.id, "trade_id": t.trade_id, "symbol": t.symbol, "exit_date": max((e[0] for e in t.exits), default=None),
            "pnl_base": t.pnl_base, "pnl_pct": t.pnl_pct}


def portfolio_summary(portfolio, *, as_of=None, lag=None):
    """Everything GET /portfolio/summary answers (SummaryOut), as known at `as_of` (None: now).
    lag: the valuation.Lag of the stored snapshots (services.catch_up_snapshots), for the notice."""
    frame, how, journal, holdings = snapshot_frame(portfolio, as_of=as_of)
    return build_summary(portfolio, frame=frame, how=how, journal=journal, holdings=holdings, as_of=as_of, lag=lag)


def catching_up(portfolio, lag):
    """Whether the snapshots wait for days past the stored ones (newer prices), not for a change."""
    stale = portfolio.snapshots_stale_from
    return stale is not None and lag is not None and lag.stored_until is not None and stale > lag.stored_until


def notice(portfolio, lag):
    """What a reader of the current figures should know about the snapshots behind them (None: nothing):
    prices newer than the stored snapshots, or a change being recomputed."""
    stale = portfolio.snapshots_stale_from
    if stale is None:
        return None
    if catching_up(portfolio, lag):
        return (f"Prices up to {lag.prices_until} are stored; the stored snapshots end at {lag.stored_until}. "
                f"They are being brought up to date and these figures are computed on the fly meanwhile; "
                f"`python manage.py snapshot --portfolio \"{portfolio.name}\"` stores them now (the daily chain "
                f"does after each close).")
    return (f"Snapshots from {stale} are being recomputed after a change; these figures are computed on the "
            f"fly meanwhile.")


def build_summary(portfolio, *, frame, how, journal, holdings, as_of=None, lag=None):
    """The summary of a snapshot frame and the journal it came from (see snapshot_frame)."""
    valued = frame[np.isfinite(frame["value"].to_numpy())]
    last = valued.iloc[-1] if len(valued) else None
    day = valued.index[-1].date() if len(valued) else None
    if holdings is not None and len(frame) and day != frame.index[-1].date():
        holdings = None  # the computation's last day was unvalued: mark the last valued day afresh
    open_positions = positions(journal, day, holdings)
    value = float(last["value"]) if last is not None else None
    for row in open_positions:
        if row["market_value"] is not None and value:
            row["weight"] = float(row["market_value"]) / value
    until = day or portfolio.inception_date
    net_flows = sum((a for d, a, k in journal.movements if k in CashMovement.EXTERNAL and d <= until), Decimal(0))
    income = sum((a for d, a, k in journal.movements if k not in CashMovement.EXTERNAL and d <= until), Decimal(0))
    closed = [t for t in journal.trades if t.status == TradeStatus.CLOSED]
    ranked = [t for t in closed if t.pnl_base is not None]
    realised = sum((t.pnl_base for t in journal.trades if t.pnl_base is not None), Decimal(0))
    unrealised = None
    if all(p["unrealised_pnl"] is not None for p in open_positions):
        unrealised = sum((p["unrealised_pnl"] for p in open_positions), Decimal(0))
    by_symbol = {}
    for t in journal.trades:
        entry = by_symbol.setdefault(t.key, {"instrument": t.key, "symbol": t.symbol, "realised": Decimal(0),
                                             "unrealised": Decimal(0)})
        entry["realised"] += t.pnl_base or Decimal(0)
    for p in open_positions:
        by_symbol[p["instrument"]]["unrealised"] += p["unrealised_pnl"] or Decimal(0)
    pnl_by_symbol = sorted(({**e, "total": e["realised"] + e["unrealised"]} for e in by_symbol.values()),
                           key=lambda e: (-e["total"], e["instrument"]))
    returns = frame["daily_return"]
    summary = metrics.summarize(returns, start=portfolio.inception_date,
                                trade_pnls=[float(t.pnl_base) for t in ranked])
    unvalued = frame[~np.isfinite(frame["value"].to_numpy())]
    stats = valued if len(valued) else frame
    vol = stats["volatility"].iloc[-1] if len(stats) else None
    sharpe = stats["sharpe"].iloc[-1] if len(stats) else None
    return {
        "portfolio": portfolio.name, "base_currency": portfolio.base_currency,
        "inception_date": portfolio.inception_date, "valuation_date": day, "as_of": as_of, "computed": how,
        "snapshots_stale_from": portfolio.snapshots_stale_from,
        "snapshots_until": lag.stored_until if lag else None, "prices_until": lag.prices_until if lag else None,
        "notice": notice(portfolio, lag) if as_of is None else None,
        "catching_up": as_of is None and catching_up(portfolio, lag), "starting_cash": portfolio.starting_cash,
        "value": _money(value), "cash": _money(last["cash"]) if last is not None else None,
        "invested": _money(last["invested"]) if last is not None else None,
        "net_flows": net_flows, "income": income,
        "total_pnl": _money(value - float(portfolio.starting_cash) - float(net_flows)) if value is not None else None,
        "total_return": _float(last["cumulative_return"]) if last is not None else None,
        "realised_pnl": realised, "unrealised_pnl": unrealised,
        **_periods(frame, day, float(portfolio.starting_cash)),
        "volatility_21d": _float(vol), "sharpe_21d": _float(sharpe),
        "open_positions": open_positions,
        "trades_open": sum(1 for t in journal.trades if t.status == TradeStatus.OPEN),
        "trades_closed": len(closed),
        "win_rate": summary["values"].get("win_rate"),
        "best_trade": _brief(max(ranked, key=lambda t: t.pnl_base)) if ranked else None,
        "worst_trade": _brief(min(ranked, key=lambda t: t.pnl_base)) if ranked else None,
        "pnl_by_symbol": pnl_by_symbol,
        "metrics": summary,
        "unvalued_days": len(unvalued),
        "unvalued_reason": (unvalued["reason"].iloc[-1] or None) if len(unvalued) else None,
    }
