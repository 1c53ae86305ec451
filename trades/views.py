"""Journal and portfolio pages: the overview, the blotter, trade forms and pages, import, portfolios and cash."""
import datetime as dt
import hashlib
import re
from decimal import Decimal

import pydantic
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from marketdata.models import PriceBar
from parakeet.lazy import lazy_module
from parakeet.uploads import UploadError, read_upload_bytes
from quant.lots import split_ratio

from . import filters, services
from .errors import ImportRejected, JournalError
from .formats import plain
from .forms import (
    CancelForm, CashForm, CloseForm, ClosePositionForm, ExitFormSet, ImportForm, PortfolioForm, TradeEditForm,
    TradeForm,
)
from .imports import ACTIONS
from .imports import MAX_ROWS as MAX_IMPORT_ROWS
from .models import CashMovement, Portfolio, Trade, TradeExit, TradeStatus
from .services import SIX

# pandas and plotly: loaded by the first page that draws a chart or marks the book (tests/test_coldstart.py)
charts = lazy_module("trades.charts")
market_charts = lazy_module("marketdata.charts")
pd = lazy_module("pandas")
summary = lazy_module("trades.summary")
valuation = lazy_module("trades.valuation")

LIST_PAGE_SIZE = 50
OVERVIEW_CACHE_SECONDS = 3600
RECENT_TRADES = 10
CHART_DAYS_BEFORE = 90
CHART_DAYS_AFTER = 30
SORTABLE = ("entry_date", "symbol", "quantity", "exit_date", "pnl", "pnl_pct", "pnl_base", "status")


# --- helpers -------------------------------------------------------------------------------------

def _books(user):
    return Portfolio.objects.visible_to(user).select_related("owner", "benchmark").order_by("name")


def _writable(user):
    return Portfolio.objects.all() if user.is_staff else Portfolio.objects.filter(owner=user)


def _chosen(request, books):
    """The portfolio a page shows: ?portfolio=<id or name> among those visible (an id first, as the API
    reads it), else the user's first own one."""
    wanted = request.GET.get("portfolio", "").strip()
    if wanted:
        by_id = [book for book in books if wanted.isdigit() and book.pk == int(wanted)]
        by_name = [book for book in books if book.name == wanted]
        if not by_id + by_name:
            raise Http404("No such portfolio")
        return (by_id + by_name)[0]
    own = [book for book in books if book.owner_id == request.user.pk]
    return (own or books or [None])[0]


def _trade(request, pk):
    trade = Trade.objects.visible_to(request.user).select_related("portfolio", "instrument").filter(pk=pk).first()
    if trade is None:
        raise Http404("No such trade")
    return trade


def _can_write(user, portfolio):
    return user.is_staff or portfolio.owner_id == user.pk


def _refuse(request, portfolio):
    if not _can_write(request.user, portfolio):
        raise Http404("No such portfolio")


def _chart(figure):
    return mark_safe(market_charts.figure_json(figure))


# --- overview ------------------------------------------------------------------------------------

def overview(request):
    """The portfolio overview: value and P&L cards, equity curve against the benchmark, drawdown,
    positions, rolling risk, recent trades and data freshness; an empty state with actions otherwise."""
    books = list(_books(request.user))
    book = _chosen(request, books)
    context = {"books": books, "book": book}
    if book is None:
        return render(request, "trades/overview.html", context)
    active = (Trade.objects.filter(portfolio=book).exists()
              or CashMovement.objects.live().filter(portfolio=book).exists())
    context["active"] = active
    if not active:
        return render(request, "trades/overview.html", context)
    context.update(_overview_figures(book, can_write=_can_write(request.user, book)))
    context["recent"] = Trade.objects.filter(portfolio=book).select_related("instrument")[:RECENT_TRADES]
    return render(request, "trades/overview.html", context)


def _overview_key(book, can_write):
    return f"trades:overview:{book.pk}:{can_write:d}:{hashlib.sha1(book.figures_stamp().encode()).hexdigest()}"


def _overview_figures(book, *, can_write):
    """The overview's figures, with the cards, charts and positions rendered (a quarter of a second for ten
    years of a busy book), cached under the book's figures stamp: any change to its trades, cash or
    snapshots, any ingest or review, and the next day, give a new stamp and so a fresh computation."""
    found = cache.get(_overview_key(book, can_write))
    if found is not None:
        return found
    # Prices newer than the stored snapshots (a file loaded outside the daily chain) mark them stale.
    lag = services.catch_up_snapshots(book)
    frame, how, journal, holdings = summary.snapshot_frame(book)
    figures = summary.build_summary(book, frame=frame, how=how, journal=journal, holdings=holdings, lag=lag)
    returns = frame["daily_return"]
    bench = _benchmark_closes(book, frame)
    book_html = render_to_string("trades/_overview_book.html", {
        "s": figures, "book": book, "can_write": can_write,
        "equity_chart": _chart(charts.equity_figure(returns, benchmark=bench,
                                                    benchmark_name=book.benchmark.key if book.benchmark else None)),
        "drawdown_chart": _chart(charts.drawdown_figure(returns)),
        "risk_chart": _chart(charts.risk_figure(frame["volatility"], frame["sharpe"])),
    })
    found = {"s": figures, "book_html": mark_safe(book_html), "by_symbol": figures["pnl_by_symbol"][:10],
             "days": len(frame)}
    if not figures.get("catching_up"):  # figures computed on the fly while snapshots catch up: not kept
        book.refresh_from_db()  # catching up may have stored snapshots: keep it under the stamp it left
        cache.set(_overview_key(book, can_write), found, OVERVIEW_CACHE_SECONDS)
    return found


def _benchmark_closes(book, frame):
    if book.benchmark_id is None or not len(frame):
        return None
    rows = (PriceBar.objects.clean().filter(instrument_id=book.benchmark_id, close__isnull=False,
                                            date__gte=frame.index[0].date() - dt.timedelta(days=10),
                                            date__lte=frame.index[-1].date())
            .order_by("date").values_list("date", "close", "adj_factor"))
    data = [(d, c * f) for d, c, f in rows]
    if not data:
        return None
    return pd.Series([v for _, v in data], index=pd.DatetimeIndex([d for d, _ in data]))


# --- the blotter ---------------------------------------------------------------------------------

def trade_list(request):
    """Trades of the portfolios you can see: filters, sorting by column, 50 a page, CSV export."""
    params = {k: v for k, v in request.GET.items() if v.strip() and k != "page"}
    errors, rows, as_of = [], Trade.objects.none(), None
    try:
        query = filters.TradeQuery(**params)
        as_of = filters.parse_as_of(query.as_of)
        rows = filters.filter_trades(request.user, query, as_of)
    except pydantic.ValidationError as exc:
        query = filters.TradeQuery()
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    except JournalError as exc:
        query = filters.TradeQuery()
        errors = [str(exc)]
    page = Paginator(rows, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    trades = list(page.object_list)
    for row in trades:
        row.link_id = row.trade_id if as_of is not None else row.pk
    books = list(_books(request.user))
    base = {k: v for k, v in params.items() if k != "sort"}
    return render(request, "trades/trade_list.html", {
        "page": page, "trades": trades, "query": query, "params": params, "errors": errors, "as_of": as_of,
        "books": books, "sorts": _sort_links(base, query.sort), "filtered": bool(base),
        "export_url": f"/api/v1/trades/export?{urlencode(params)}",
        "any_trades": Trade.objects.visible_to(request.user).exists(),
    }, status=400 if errors else 200)


def _sort_links(base, current):
    """{column: (url, arrow)}: a click sorts by the column, a second click reverses it."""
    links = {}
    for column in SORTABLE:
        descending = current == f"-{column}"
        ascending = current == column
        target = column if descending else f"-{column}"
        arrow = "▼" if descending else "▲" if ascending else ""
        links[column] = ("?" + urlencode({**base, "sort": target}), arrow)
    return links


# --- one trade -----------------------------------------------------------------------------------

HISTORY_FIELDS = (("symbol", "symbol"), ("direction", "direction"), ("quantity", "quantity"),
                  ("entry_date", "entry date"), ("entry_price", "entry price"), ("entry_commission", "commission"),
                  ("status", "status"), ("strategy_name", "strategy"), ("signal_ref", "signal"), ("notes", "notes"))


def _show(value):
    if value is None or value == "":
        return "—"
    if isinstance(value, Decimal):
        return plain(value)
    return str(value)


def _history(trade):
    """Versions oldest first, each with what changed from the one before ("field: old → new")."""
    versions = list(trade.versions.select_related("changed_by").prefetch_related("exits").order_by("version"))
    previous, out = None, []
    for version in versions:
        exits = [f"{e.date} {_show(e.quantity)} @ {_show(e.price)} (fee {_show(e.commission)})"
                 for e in version.exits.all()]
        changes = []
        if previous is not None:
            for name, label in HISTORY_FIELDS:
                old, new = getattr(previous[0], name), getattr(version, name)
                if old != new:
                    changes.append(f"{label}: {_show(old)} → {_show(new)}")
            if previous[1] != exits:
                changes.append(f"exits: {'; '.join(previous[1]) or 'none'} → {'; '.join(exits) or 'none'}")
        out.append({"v": version, "exits": exits, "changes": changes})
        previous = (version, exits)
    return out


# A leg more than this far outside its day's low-high range is pointed out on the trade's page: a price from
# before a split, in another currency or mistyped. It is kept as recorded (the journal trusts the trader).
OFF_MARKET = 0.01


def _off_market(trade, legs, bars):
    """A line for each leg priced more than OFF_MARKET outside its day's low-high (bars: BAR_COLUMNS rows)."""
    ranges = {day: (low, high) for day, _open, high, low, *_ in bars}
    lines = []
    for day, price, label, _ in legs:
        low, high = ranges.get(day, (None, None))
        if low is not None and high is not None:
            if not low * (1 - OFF_MARKET) <= float(price) <= high * (1 + OFF_MARKET):
                lines.append(f"{label}: {trade.instrument.key} traded {low:,.2f} to {high:,.2f} that day")
    return lines


def trade_detail(request, pk):
    """One trade: its legs and P&L, its price chart with entry and exits marked, and its full history."""
    trade = _trade(request, pk)
    exits = list(TradeExit.objects.filter(version__trade=trade, version__superseded_at__isnull=True).order_by("date", "id"))
    legs = [(trade.entry_date, trade.entry_price, f"{trade.get_direction_display()} entry {_show(trade.quantity)} @ "
                                                   f"{_show(trade.entry_price)} on {trade.entry_date}", "entry")]
    legs += [(e.date, e.price, f"Exit {_show(e.quantity)} @ {_show(e.price)} on {e.date}", "exit") for e in exits]
    start = trade.entry_date - dt.timedelta(days=CHART_DAYS_BEFORE)
    # An open trade (partly closed or not) runs to the latest bar; a closed one a month past its last exit.
    end = (timezone.localdate() if trade.status == TradeStatus.OPEN or trade.exit_date is None
           else trade.exit_date + dt.timedelta(days=CHART_DAYS_AFTER))
    bars = PriceBar.objects.clean().filter(instrument=trade.instrument)
    warmup = bars.filter(date__lt=start).order_by("-date").values_list(*market_charts.BAR_COLUMNS)[: max(market_charts.MOVING_AVERAGES) - 1]
    shown = list(bars.filter(date__gte=start, date__lte=end).order_by("date").values_list(*market_charts.BAR_COLUMNS))
    chart = None
    off_market = _off_market(trade, legs, shown)
    if shown:
        frame = market_charts.bars_frame([*reversed(warmup), *shown])
        chart = _chart(charts.trade_figure(frame, title=f"{trade.instrument.key}: {trade.trade_id}", legs=legs,
                                           visible_from=start))
    return render(request, "trades/trade_detail.html", {
        "trade": trade, "exits": exits, "history": _history(trade), "chart": chart, "off_market": off_market,
        "can_write": _can_write(request.user, trade.portfolio),
    })


def trade_new(request):
    """Open a trade (inline validation: the journal's reason sits next to the field)."""
    writable = _writable(request.user).order_by("name")
    if not writable.exists():
        messages.info(request, "Create a portfolio first; trades are recorded in one.")
        return redirect("trades:portfolio_new")
    initial = {"entry_date": timezone.localdate(), "direction": "long", "entry_commission": 0}
    if request.GET.get("portfolio", "").isdigit():
        initial["portfolio"] = int(request.GET["portfolio"])
    form = TradeForm(request.POST or None, portfolios=writable, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            trade = services.record_trade(portfolio=data["portfolio"], user=request.user, **_trade_fields(data),
                                          strategy_name=data["strategy_name"], signal_ref=data["signal_ref"],
                                          notes=data["notes"])
        except JournalError as exc:
            form.add_journal_error(exc)
        else:
            messages.success(request, f"Recorded {trade.trade_id}: {trade.direction} {_show(trade.quantity)} "
                                      f"{trade.symbol} @ {_show(trade.entry_price)}.")
            return redirect("trades:trade_detail", pk=trade.pk)
    elif request.method == "POST" and form.cleaned_data.get("portfolio"):
        # Some fields did not parse; what the journal says of the others is shown with them, at once.
        try:
            services.check_trade(portfolio=form.cleaned_data["portfolio"], **_trade_fields(form.cleaned_data))
        except JournalError as exc:
            form.add_journal_error(exc, skip_fields_with_errors=True)
    return render(request, "trades/trade_form.html", {"form": form, "title": "Record a trade"},
                  status=400 if form.errors else 200)


def _trade_fields(data):
    """The journal's arguments for a trade from the trade form's cleaned data (missing ones None)."""
    percent = data.get("target_percent")
    return {"symbol": data.get("symbol"), "direction": data.get("direction") or "long",
            "quantity": data.get("quantity"), "target_weight": None if percent in (None, "") else percent / 100,
            "entry_date": data.get("entry_date"), "entry_price": data.get("entry_price"),
            "entry_commission": data.get("entry_commission") or 0}


EXIT_FIELD = re.compile(r"exits\[(\d+)\]\.(\w+)")


def trade_edit(request, pk):
    """Edit a trade's entry, exits and notes: a new version, with the reason in its history."""
    trade = _trade(request, pk)
    _refuse(request, trade.portfolio)
    if trade.status == TradeStatus.CANCELLED:
        messages.error(request, "A cancelled trade keeps its last version; it cannot be edited.")
        return redirect("trades:trade_detail", pk=trade.pk)
    exits = TradeExit.objects.filter(version__trade=trade, version__superseded_at__isnull=True).order_by("date", "id")
    initial = {name: getattr(trade, name) for name in ("symbol", "direction", "quantity", "entry_date", "entry_price",
                                                      "entry_commission", "strategy_name", "signal_ref", "notes")}
    initial["symbol"] = trade.instrument.key
    form = TradeEditForm(request.POST or None, initial=initial)
    formset = ExitFormSet(request.POST or None, prefix="exits", initial=[
        {"date": e.date, "quantity": e.quantity, "price": e.price, "commission": e.commission} for e in exits])
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        kept = [(i, f.cleaned_data) for i, f in enumerate(formset.forms)
                if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        changes = {name: form.cleaned_data[name] for name in initial}
        changes["exits"] = [{"date": d["date"], "quantity": d["quantity"], "price": d["price"],
                             "commission": d.get("commission") or 0} for _, d in kept]
        try:
            services.revise_trade(trade, user=request.user, changes=changes, reason=form.cleaned_data["reason"])
        except JournalError as exc:
            rest = []
            for name, problem in exc.problems:
                match = EXIT_FIELD.fullmatch(name)
                if match and int(match.group(1)) < len(kept):
                    formset.forms[kept[int(match.group(1))][0]].add_error(match.group(2), problem)
                else:
                    rest.append((name, problem))
            if rest:
                form.add_journal_error(JournalError(rest))
        else:
            messages.success(request, f"{trade.trade_id} updated; the history keeps the previous version.")
            return redirect("trades:trade_detail", pk=trade.pk)
    failed = bool(form.errors or any(f.errors for f in formset.forms) or formset.non_form_errors())
    return render(request, "trades/trade_edit.html", {"trade": trade, "form": form, "formset": formset},
                  status=400 if failed else 200)


def trade_close(request, pk):
    """Record an exit of one trade: all that is still open, or part of it."""
    trade = _trade(request, pk)
    _refuse(request, trade.portfolio)
    if trade.status != TradeStatus.OPEN:
        messages.error(request, f"{trade.trade_id} is {trade.status}; only an open trade can be closed.")
        return redirect("trades:trade_detail", pk=trade.pk)
    form = CloseForm(request.POST or None, initial={"exit_date": timezone.localdate(), "exit_commission": 0})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.close_trade(trade, user=request.user, date=data["exit_date"], price=data["exit_price"],
                                 quantity=data.get("exit_quantity"), commission=data.get("exit_commission") or 0,
                                 reason=data["reason"])
        except JournalError as exc:
            form.add_journal_error(exc)
        else:
            trade.refresh_from_db()
            messages.success(request, f"Exit recorded; {trade.trade_id} is {trade.status}.")
            return redirect("trades:trade_detail", pk=trade.pk)
    return render(request, "trades/trade_close.html", {"trade": trade, "form": form},
                  status=400 if form.errors else 200)


def trade_cancel(request, pk):
    """Cancel a trade (POST): a new version with status cancelled; never deleted."""
    trade = _trade(request, pk)
    _refuse(request, trade.portfolio)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.cancel_trade(trade, user=request.user, reason=form.cleaned_data["reason"])
        except JournalError as exc:
            messages.error(request, exc.problem)
        else:
            messages.success(request, f"{trade.trade_id} cancelled; its history is kept.")
        return redirect("trades:trade_detail", pk=trade.pk)
    return render(request, "trades/trade_cancel.html", {"trade": trade, "form": form})


def position_close(request, pk):
    """Sell or buy back shares of a position, matched first in, first out against its open lots."""
    book = get_object_or_404(_books(request.user), pk=pk)
    _refuse(request, book)
    key, direction = request.GET.get("instrument", ""), request.GET.get("direction", "long")
    lots = list(Trade.objects.filter(portfolio=book, status=TradeStatus.OPEN, direction=direction)
                .select_related("instrument").order_by("entry_date", "id"))
    lots = [lot for lot in lots if lot.instrument.key == key]
    if not lots:
        raise Http404("No open position")
    # What a sale today takes: each lot's open entry shares times the splits since its entry.
    today = timezone.localdate()
    splits = valuation.splits_of([lots[0].instrument_id]).get(key, [])
    for lot in lots:
        lot.held = (lot.open_quantity * Decimal(repr(split_ratio(splits, lot.entry_date, today)))).quantize(SIX)
    open_shares = sum(lot.open_quantity for lot in lots)
    held = sum(lot.held for lot in lots)
    form = ClosePositionForm(request.POST or None, initial={"date": today, "commission": 0, "quantity": held})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            touched = services.close_position(
                portfolio=book, user=request.user, symbol=lots[0].instrument, direction=direction,
                date=data["date"], price=data["price"], quantity=data["quantity"],
                commission=data.get("commission") or 0, reason=data["reason"])
        except JournalError as exc:
            form.add_journal_error(exc)
        else:
            messages.success(request, f"Exit recorded against {len(touched)} lot{'s' if len(touched) != 1 else ''} "
                                      f"of {key}, oldest first.")
            return redirect(f"{reverse('trades:overview')}?portfolio={book.pk}")
    return render(request, "trades/position_close.html", {
        "book": book, "key": key, "direction": direction, "lots": lots, "open_shares": open_shares, "held": held,
        "split": held != open_shares, "form": form,
    }, status=400 if form.errors else 200)


# --- import --------------------------------------------------------------------------------------

def trade_import(request):
    """Upload a trade file: atomic (a bad row rejects the file with its row number and reason)."""
    writable = _writable(request.user).order_by("name")
    if not writable.exists():
        messages.info(request, "Create a portfolio first; a file is imported into one.")
        return redirect("trades:portfolio_new")
    initial = {"portfolio": int(request.GET["portfolio"])} if request.GET.get("portfolio", "").isdigit() else {}
    form = ImportForm(request.POST or None, request.FILES or None, portfolios=writable, initial=initial)
    rejected = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        book = form.cleaned_data["portfolio"]
        try:
            try:
                data = read_upload_bytes(upload)  # the size and extension, before a byte is parsed
            except UploadError as exc:
                raise ImportRejected([exc.problem], file=upload.name) from None
            result = services.import_trades(portfolio=book, data=data, user=request.user, name=upload.name,
                                            max_rows=MAX_IMPORT_ROWS, again=form.cleaned_data["again"])
        except ImportRejected as exc:
            rejected = exc
        else:
            messages.success(request, f"{upload.name}: {result.rows} rows imported into {book.name}: "
                                      f"{result.trades} trades opened, {result.exits} exits, {result.cash} cash "
                                      f"movements.")
            return redirect(f"{reverse('trades:trade_list')}?{urlencode({'portfolio': book.name})}")
    return render(request, "trades/trade_import.html", {"form": form, "rejected": rejected, "actions": ACTIONS},
                  status=400 if rejected or form.errors else 200)


# --- portfolios and cash -------------------------------------------------------------------------

def portfolio_list(request):
    """The portfolios you can see, each with its latest value."""
    books = list(_books(request.user))
    latest = {}
    for book in books:
        latest[book.pk] = book.snapshots.exclude(total_value__isnull=True).order_by("-date").first()
    rows = [{"book": b, "latest": latest[b.pk]} for b in books]
    return render(request, "trades/portfolio_list.html", {"rows": rows})


def portfolio_new(request):
    form = PortfolioForm(request.POST or None, initial={"inception_date": timezone.localdate(), "starting_cash": 0})
    if request.method == "POST" and form.is_valid():
        try:
            book = services.create_portfolio(owner=request.user, **form.cleaned_data)
        except JournalError as exc:
            form.add_journal_error(exc)
        else:
            messages.success(request, f"Portfolio {book.name} created.")
            return redirect(f"{reverse('trades:overview')}?portfolio={book.pk}")
    return render(request, "trades/portfolio_form.html", {"form": form}, status=400 if form.errors else 200)


def portfolio_detail(request, pk):
    """A portfolio's settings and cash movements: add a deposit, withdrawal, dividend, fee or interest,
    void a wrong one (kept, with who and when)."""
    book = get_object_or_404(_books(request.user), pk=pk)
    can_write = _can_write(request.user, book)
    settings_form = PortfolioForm(initial={
        "name": book.name, "base_currency": book.base_currency, "starting_cash": book.starting_cash,
        "inception_date": book.inception_date, "benchmark": book.benchmark})
    settings_form.fields["base_currency"].disabled = True
    cash_form = CashForm(initial={"date": timezone.localdate(), "kind": "deposit"})
    status = 200
    if request.method == "POST":
        if not can_write:
            raise Http404("No such portfolio")
        action = request.POST.get("action")
        try:
            if action == "settings":
                settings_form = PortfolioForm(request.POST, initial={"base_currency": book.base_currency})
                settings_form.fields["base_currency"].disabled = True
                if settings_form.is_valid():
                    data = settings_form.cleaned_data
                    services.update_portfolio(book, name=data["name"], benchmark=data["benchmark"],
                                              starting_cash=data["starting_cash"], inception_date=data["inception_date"])
                    messages.success(request, "Settings saved.")
                    return redirect("trades:portfolio_detail", pk=book.pk)
            elif action == "cash":
                cash_form = CashForm(request.POST)
                if cash_form.is_valid():
                    data = cash_form.cleaned_data
                    services.add_cash(portfolio=book, user=request.user, date=data["date"], kind=data["kind"],
                                      amount=data["amount"], instrument=data["symbol"] or None, notes=data["notes"])
                    messages.success(request, "Cash movement recorded.")
                    return redirect("trades:portfolio_detail", pk=book.pk)
            elif action == "void":
                movement = get_object_or_404(CashMovement, pk=request.POST.get("movement"), portfolio=book)
                services.void_cash(movement, user=request.user, reason=request.POST.get("reason", ""))
                messages.success(request, "Movement voided; it stays in the list, struck through.")
                return redirect("trades:portfolio_detail", pk=book.pk)
        except JournalError as exc:
            target = settings_form if action == "settings" else cash_form
            if action == "void":
                messages.error(request, exc.problem)
                return redirect("trades:portfolio_detail", pk=book.pk)
            target.add_journal_error(exc)
        status = 400
    movements = book.cash_movements.select_related("instrument", "recorded_by", "voided_by").order_by("-date", "-id")
    return render(request, "trades/portfolio_detail.html", {
        "book": book, "settings_form": settings_form, "cash_form": cash_form, "movements": movements,
        "can_write": can_write,
    }, status=status)
