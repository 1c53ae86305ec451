"""Strategy pages: the catalog with a form per strategy, a run, a comparison of runs, a sweep, metric definitions."""
import html
import re

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from parakeet.lazy import lazy_module

from .models import BacktestRun, BacktestSweep

# pandas, plotly and the strategies: loaded by the first request that needs them (tests/test_coldstart.py)
charts = lazy_module("strategies.charts")
market_charts = lazy_module("marketdata.charts")
pd = lazy_module("pandas")
services = lazy_module("strategies.services")
strategies = lazy_module("quant.strategies")

# (key in the summary, label, anchor in docs/metrics.md, format)
METRICS = [
    ("total_return", "Total return", "total-return", "pct"),
    ("cagr", "CAGR", "cagr", "pct"),
    ("volatility", "Volatility", "volatility", "pct"),
    ("sharpe", "Sharpe", "sharpe", "ratio"),
    ("sortino", "Sortino", "sortino", "ratio"),
    ("max_drawdown", "Max drawdown", "max-drawdown", "pct"),
    ("calmar", "Calmar", "calmar", "ratio"),
    ("var_95", "VaR 95%, 1 day", "var-95-1-day", "pct"),
    ("cvar_95", "CVaR 95%, 1 day", "cvar-95-1-day", "pct"),
    ("best_month", "Best month", "best-worst-month", "pct"),
    ("worst_month", "Worst month", "best-worst-month", "pct"),
    ("win_rate", "Win rate (per trade)", "win-rate", "pct"),
    ("profit_factor", "Profit factor", "profit-factor", "ratio"),
    ("turnover", "Turnover (a year)", "turnover", "ratio"),
    ("exposure", "Exposure (share of days)", "exposure", "pct"),
    ("avg_gross_exposure", "Average gross exposure", "average-gross-net-exposure", "pct"),
    ("avg_net_exposure", "Average net exposure", "average-gross-net-exposure", "pct"),
    ("costs", "Costs paid", "costs-orders-round-trips", "money"),
    ("orders", "Orders", "costs-orders-round-trips", "count"),
    ("round_trips", "Closed round trips", "costs-orders-round-trips", "count"),
    ("final_equity", "Final equity", "costs-orders-round-trips", "money"),
]
ENGINE_LABELS = {"fill": "Fill at the next bar's", "commission_bps": "Commission (bps)",
                 "commission_min": "Minimum commission", "slippage_bps": "Slippage (bps)", "capital": "Capital",
                 "fractional": "Fractional shares"}
TRADES_SHOWN = 500
RECENT = 20


# --- the catalog and its forms ------------------------------------------------------------------------------

def param_fields(strategy, values=None, errors=None):
    """Form fields generated from the strategy's parameter JSON Schema (type, bounds, default, help)."""
    schema = strategy.schema()
    fields = []
    for name, spec in schema.get("properties", {}).items():
        field = {"name": name, "input": f"p_{name}", "label": spec.get("title", name),
                 "help": spec.get("description", ""), "default": spec.get("default"),
                 "value": (values or {}).get(name, spec.get("default")), "error": (errors or {}).get(name)}
        if "enum" in spec:
            field.update(kind="select", choices=spec["enum"])
        elif spec.get("type") == "integer":
            field.update(kind="number", step="1", min=spec.get("minimum"), max=spec.get("maximum"))
        elif spec.get("type") == "number":
            field.update(kind="number", step="any", min=spec.get("minimum"), max=spec.get("maximum"))
        elif spec.get("type") == "boolean":
            field.update(kind="checkbox")
        else:
            field.update(kind="text", maxlength=spec.get("maxLength"))
        fields.append(field)
    return fields


def _catalog_context(request, *, chosen=None, values=None, errors=None, common=None, sweep_errors=None):
    cards = []
    for strategy in strategies.CATALOG.values():
        mine = strategy.name == chosen
        cards.append({"strategy": strategy,
                      "fields": param_fields(strategy, values if mine else None, errors if mine else None),
                      "errors": errors if mine else None, "common": common if mine else None})
    spans = services.data_spans()
    first, last = services.data_span(spans=spans)
    return {
        "cards": cards, "engine": services.ENGINE_DEFAULTS, "first": first, "last": last, "spans": spans,
        "default_universe": services.default_universe(),
        "runs": BacktestRun.objects.visible_to(request.user).select_related("requested_by")[:RECENT],
        "sweeps": BacktestSweep.objects.visible_to(request.user)[:10],
        "sweep_errors": sweep_errors, "sweep_values": values if sweep_errors else None,
        "param_names": {s.name: list(s.params.model_fields) for s in strategies.CATALOG.values()},
    }


def catalog(request):
    """Every strategy with a form generated from its parameter model; recent runs and sweeps."""
    return render(request, "strategies/strategy_list.html", _catalog_context(request))


def _common(post):
    engine = {"fill": post.get("fill") or None,
              "fractional": post.get("fractional") == "1" if "fractional_shown" in post else None}
    for name in ("commission_bps", "commission_min", "slippage_bps", "capital"):
        text = (post.get(name) or "").strip()
        engine[name] = text or None
    dates = {}
    for name in ("start", "end"):
        text = (post.get(name) or "").strip()
        dates[name] = text
    return engine, dates, (post.get("universe") or "").strip()


def _parse_engine(engine):
    out, errors = {}, {}
    for name, value in engine.items():
        if value is None or name in ("fill", "fractional"):
            out[name] = value
            continue
        try:
            out[name] = float(value)
        except ValueError:
            errors[name] = f"{value!r} is not a number"
    return out, errors


def _parse_dates(dates):
    import datetime as dt

    out, errors = {}, {}
    for name, text in dates.items():
        if not text:
            out[name] = None
            continue
        try:
            out[name] = dt.date.fromisoformat(text)
        except ValueError:
            errors[name] = f"{text!r} is not a date (YYYY-MM-DD)"
    return out, errors


@require_POST
def start_run(request):
    """POST from a catalog form: validate, queue the run, go to its page (400 with the problems otherwise)."""
    name = request.POST.get("strategy", "")
    try:
        strategy = strategies.get(name)
    except strategies.UnknownStrategy as exc:
        raise Http404(str(exc)) from None
    values = {f: request.POST[f"p_{f}"].strip() for f in strategy.params.model_fields
              if request.POST.get(f"p_{f}", "").strip()}
    engine, dates, universe = _common(request.POST)
    engine, errors = _parse_engine(engine)
    dates, date_errors = _parse_dates(dates)
    errors.update(date_errors)
    common = {"universe": universe, **{k: request.POST.get(k, "") for k in ("start", "end", *services.ENGINE_DEFAULTS)}}
    if not errors:
        try:
            run = services.start_backtest(strategy=name, params=values, universe=universe, engine=engine,
                                          requested_by=request.user, **dates)
        except services.BacktestRequestError as exc:
            key = exc.loc[-1] if exc.loc[0] == "params" and len(exc.loc) > 1 else exc.loc[0]
            errors[key] = exc.message
        else:
            return redirect("strategies:backtest_detail", pk=run.pk)
    context = _catalog_context(request, chosen=name, values=values, errors=errors, common=common)
    return render(request, "strategies/strategy_list.html", context, status=400)


# --- one run ---------------------------------------------------------------------------------------------

def backtest_detail(request, pk):
    """A run: metrics with their definitions, equity vs benchmark, drawdown, monthly heatmap, rolling Sharpe,
    trades, the bias check and the survivorship flag."""
    run = get_object_or_404(BacktestRun.objects.visible_to(request.user).select_related("requested_by"), pk=pk)
    strategy = strategies.CATALOG.get(run.strategy)
    given = run.params.get("strategy", {})
    # In the parameter model's order (PostgreSQL's jsonb keeps keys in its own order).
    order = list(strategy.params.model_fields) if strategy else []
    params = sorted(given.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    context = {"run": run, "strategy": strategy, "params": params, "engine_labels": ENGINE_LABELS}
    if run.status == "success":
        equity = services.read_artifact(run.equity_path)
        trades = services.read_artifact(run.trades_path)
        trips = services.read_artifact(run.round_trips_path)
        dates = pd.DatetimeIndex(equity["date"])
        returns = pd.Series(equity["returns"].to_numpy(), index=dates)
        summary = run.metrics.get("strategy", {})
        bench = run.metrics.get("benchmark", {})
        context.update({
            "metrics": [{"key": key, "label": label, "anchor": anchor, "kind": kind,
                         "value": summary.get("values", {}).get(key), "benchmark": bench.get("values", {}).get(key),
                         "reason": summary.get("undefined", {}).get(key)} for key, label, anchor, kind in METRICS],
            "drawdown_dates": summary.get("drawdown_dates", {}),
            "bias": run.metrics.get("bias_check", {}),
            "psr": run.metrics.get("psr"),
            "holdings": run.metrics.get("final_holdings", []),
            "trades": trades.tail(TRADES_SHOWN).iloc[::-1].to_dict("records"),
            "trade_count": len(trades),
            "trips": trips.tail(TRADES_SHOWN).iloc[::-1].to_dict("records"),
            "trip_count": len(trips),
            "charts": [
                ("equity-chart", "Equity against the benchmark", charts.equity_figure(
                    dates, equity["equity"], equity["benchmark_equity"], title="Equity against the benchmark")),
                ("drawdown-chart", "Drawdown", charts.drawdown_figure(
                    dates, returns.iloc[1:].reindex(dates).fillna(0.0).to_numpy(), equity["benchmark_returns"].to_numpy())),
                ("monthly-chart", "Monthly returns heatmap", charts.monthly_heatmap(returns.iloc[1:])),
                ("rolling-chart", "Rolling Sharpe", charts.rolling_sharpe_figure(dates[1:], returns.iloc[1:])),
            ],
        })
        context["charts"] = [{"id": i, "label": label, "json": mark_safe(market_charts.figure_json(fig))}
                             for i, label, fig in context["charts"]]
    return render(request, "strategies/backtestrun_detail.html", context)


def compare(request):
    """Several runs side by side: their metrics and their equity curves from 1 (?ids=1,2,3 or ?ids=1&ids=2)."""
    raw = ",".join(request.GET.getlist("ids"))
    ids = []
    for part in raw.split(","):
        if part.strip().isdigit():
            ids.append(int(part))
    visible = BacktestRun.objects.visible_to(request.user)
    runs = list(visible.filter(pk__in=ids, status="success").order_by("id"))
    context = {"runs": runs, "asked": ids, "metrics": METRICS[:11], "recent": visible.finished()[:RECENT]}
    if runs:
        curves = {}
        for run in runs:
            equity = services.read_artifact(run.equity_path)
            curves[f"#{run.pk} {run.strategy}"] = pd.Series(
                equity["equity"].to_numpy() / run.params["engine"]["capital"], index=pd.DatetimeIndex(equity["date"]))
        context["chart"] = mark_safe(market_charts.figure_json(charts.compare_figure(curves)))
        context["rows"] = [{"key": key, "label": label, "anchor": anchor, "kind": kind,
                            "values": [run.metrics.get("strategy", {}).get("values", {}).get(key) for run in runs]}
                           for key, label, anchor, kind in METRICS[:11]]
    return render(request, "strategies/backtestrun_compare.html", context)


# --- sweeps --------------------------------------------------------------------------------------------

def _values(text):
    """'10, 20, 50' -> ['10', '20', '50'] (the model parses them)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@require_POST
def start_sweep(request):
    """POST from the sweep form: two parameters with their values, or one; queue it and go to its page."""
    name = request.POST.get("strategy", "")
    grid = {}
    for axis in ("x", "y"):
        param = (request.POST.get(f"{axis}_param") or "").strip()
        if param:
            grid[param] = _values(request.POST.get(f"{axis}_values"))
    engine, dates, universe = _common(request.POST)
    engine, errors = _parse_engine(engine)
    dates, date_errors = _parse_dates(dates)
    errors.update(date_errors)
    if not errors:
        try:
            sweep = services.start_sweep(strategy=name, universe=universe, engine=engine, grid=grid,
                                         requested_by=request.user, **dates)
        except services.BacktestRequestError as exc:
            errors[".".join(exc.loc)] = exc.message
        else:
            return redirect("strategies:sweep_detail", pk=sweep.pk)
    context = _catalog_context(request, sweep_errors=errors, values=dict(request.POST.items()))
    return render(request, "strategies/strategy_list.html", context, status=400)


def sweep_detail(request, pk):
    """A sweep: progress, the Sharpe heatmap over its two parameters, every set's metrics, and its validation."""
    sweep = get_object_or_404(BacktestSweep.objects.visible_to(request.user), pk=pk)
    results = list(sweep.results.order_by("index"))
    grid = sweep.params["grid"]
    names = list(grid)
    context = {"sweep": sweep, "results": results, "names": names, "done": len(results),
               "validation": sweep.validation}
    if results and len(names) in (1, 2):
        x_name = names[0]
        y_name = names[1] if len(names) == 2 else None
        xs = grid[x_name]
        ys = grid[y_name] if y_name else [""]
        by_index = {r.index: r for r in results}
        z = []
        for i, _ in enumerate(ys):
            row = []
            for j, _ in enumerate(xs):
                result = by_index.get(j * len(ys) + i)
                row.append(None if result is None else result.metrics.get("sharpe"))
            z.append(row)
        figure = charts.sweep_heatmap(x_name, xs, y_name or "", ys, z, title=f"Sharpe over {x_name}"
                                      + (f" and {y_name}" if y_name else ""))
        context["chart"] = mark_safe(market_charts.figure_json(figure))
    return render(request, "strategies/backtestsweep_detail.html", context)


# --- definitions -----------------------------------------------------------------------------------------

def metric_definitions(request):
    """docs/metrics.md as a page: every metric of the run pages with its formula, annualisation and NaN policy."""
    text = (settings.BASE_DIR / "docs" / "metrics.md").read_text()
    return render(request, "strategies/metric_definitions.html", {"body": mark_safe(_markdown(text))})


def _inline(text):
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _markdown(text):
    """The small part of Markdown docs/metrics.md uses: headings, paragraphs, bullet lists, one table.

    Each table row gets an id from its first cell ('max drawdown' -> 'max-drawdown') for the run pages' links.
    """
    out, paragraph, in_list, rows = [], [], False, []

    def flush():
        nonlocal paragraph, in_list, rows
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph = []
        if in_list:
            out.append("</ul>")
            in_list = False
        if rows:
            head, *body = [r for r in rows if not set(r.replace("|", "").strip()) <= set("-: ")]
            cells = [c.strip() for c in head.strip("|").split("|")]
            out.append('<div class="table-wrap"><table class="definitions"><thead><tr>'
                       + "".join(f"<th>{_inline(c)}</th>" for c in cells) + "</tr></thead><tbody>")
            for row in body:
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                anchor = slugify(cells[0])
                out.append(f'<tr id="{anchor}">' + "".join(f"<td>{_inline(c)}</td>" for c in cells) + "</tr>")
            out.append("</tbody></table></div>")
            rows = []

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            if paragraph or in_list:
                flush()
            rows.append(stripped)
            continue
        if rows:
            flush()
        if not stripped:
            flush()
        elif stripped.startswith("#"):
            flush()
            level = len(stripped) - len(stripped.lstrip("#"))
            title = stripped.lstrip("#").strip()
            out.append(f'<h{level + 0} id="{slugify(title)}">{_inline(title)}</h{level + 0}>')
        elif stripped.startswith("- "):
            if paragraph:
                out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
                paragraph = []
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(stripped[2:])}</li>")
        elif in_list and line.startswith("  "):
            out[-1] = out[-1][:-5] + " " + _inline(stripped) + "</li>"
        else:
            paragraph.append(stripped)
    flush()
    return "\n".join(out)


def backtest_list(request):
    """Your runs and the desk's (staff: every run), newest first, 50 a page."""
    runs = BacktestRun.objects.visible_to(request.user).select_related("requested_by")
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(request, "strategies/backtestrun_list.html", {"page": page, "runs": page.object_list})

