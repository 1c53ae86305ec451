"""Scanner pages: run a screen and read its funnel and hits, one hit's setup on its chart, replays."""
import datetime as dt
import json

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.urls import reverse
from django.utils.safestring import mark_safe

from parakeet.jobs import JobStatus
from parakeet.lazy import lazy_module

from . import tasks
from .models import SavedScreen, ScanHit, ScanReplay, ScanRun

# pandas, plotly and the screens: loaded by the first request that needs them (tests/test_coldstart.py)
charts = lazy_module("scanner.charts")
market_charts = lazy_module("marketdata.charts")
quant_screens = lazy_module("quant.screens")
services = lazy_module("scanner.services")
universes = lazy_module("marketdata.universes")

RECENT_RUNS = 15
RECENT_REPLAYS = 20
REPLAY_HITS_SHOWN = 200
# Metrics the hit page explains but the results table leaves out (they would crowd it).
NOT_IN_TABLE = ("close", "history")
NOT_IN_TABLE_PREFIXES = ("ma_", "high_")
CHART_BEFORE_DAYS, CHART_AFTER_DAYS = 270, 90


class OverridesField(forms.JSONField):
    """Parameter overrides as JSON: an empty box (not `null`) when there are none, so the placeholder shows."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class ScanForm(forms.Form):
    """The scan form: a screen (saved or built-in), a universe, a date and parameter overrides as JSON."""

    screen = forms.CharField(max_length=64)
    universe = forms.CharField(max_length=32, required=False)
    as_of = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    params = OverridesField(required=False, help_text='e.g. {"top_percent": 2, "filters": {"min_price": {"USD": 10}}}')

    def clean_params(self):
        value = self.cleaned_data.get("params")
        if value in (None, ""):
            return None
        if not isinstance(value, dict):
            raise forms.ValidationError('give an object, e.g. {"top_percent": 2}')
        return value


class SaveScreenForm(ScanForm):
    name = forms.CharField(max_length=64)
    daily = forms.BooleanField(required=False)
    description = forms.CharField(max_length=200, required=False)


class ReplayForm(forms.Form):
    screen = forms.CharField(max_length=64)
    universe = forms.CharField(max_length=32, required=False)
    start = forms.DateField(input_formats=["%Y-%m-%d"])
    end = forms.DateField(input_formats=["%Y-%m-%d"])
    horizons = forms.CharField(max_length=64, initial="5,20,60")
    only_new = forms.BooleanField(required=False, initial=True)
    params = OverridesField(required=False)

    def clean_horizons(self):
        text = self.cleaned_data["horizons"]
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("whole numbers of sessions separated by commas, e.g. 5,20,60") from None


def _errors(form):
    return [f"{field}: {' '.join(problems)}" if field != "__all__" else " ".join(problems)
            for field, problems in form.errors.items()]


def scanner(request, run_id=None):
    """The scanner: the scan form, then the run shown (this one, or the latest successful) with its funnel,
    changes since the previous run, the sortable hits table, the saved screens and recent runs.

    POST starts a scan (queued, run when the request commits) and redirects to its page; a bad form is
    shown again with the problem named, status 400.
    """
    errors = []
    form = ScanForm(request.POST or None, initial={"screen": request.GET.get("screen", "momentum-us"),
                                                   "universe": request.GET.get("universe", "")})
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                run = services.start_scan(screen=data["screen"], universe=data["universe"] or None,
                                          as_of=data["as_of"], params=data["params"], requested_by=request.user)
            except services.ScanError as exc:
                errors.append(exc.detail)
            else:
                tasks.enqueue_scan(run.pk)
                return redirect("scanner:run_detail", run_id=run.pk)
        else:
            errors += _errors(form)
    if run_id is not None:
        run = get_object_or_404(ScanRun.objects.visible_to(request.user).for_list(), pk=run_id)
    else:
        run = ScanRun.objects.visible_to(request.user).latest_result()
    context = {"form": form, "errors": errors, "run": run, **_choices()}
    if run is not None:
        context.update(_run_context(request, run))
    context.update(_saved_and_recent(request.user))
    return render(request, "scanner/scanrun_detail.html", context, status=400 if errors else 200)


def _choices():
    return {"saved_screens": SavedScreen.objects.order_by("name"), "builtin": quant_screens.SCREENS.values(),
            "universes": universes.known_codes()}


def _run_context(request, run):
    metrics = [m for m in run.context.get("metrics", [])
               if m["key"] not in NOT_IN_TABLE and not m["key"].startswith(NOT_IN_TABLE_PREFIXES)]
    hits = list(run.hits.select_related("instrument").order_by("rank"))
    sort, descending = request.GET.get("sort", "rank"), request.GET.get("dir", "") == "desc"
    sortable = {"rank", "symbol", "score", *(m["key"] for m in metrics)}
    if sort not in sortable:
        sort = "rank"

    def key(hit):
        if sort == "rank":
            return (False, hit.rank)
        if sort == "symbol":
            return (False, hit.instrument.symbol)
        value = hit.score if sort == "score" else hit.metrics.get(sort)
        # Missing values sort last whichever way.
        return (value is None, (-value if descending else value) if value is not None else 0)

    hits.sort(key=key)
    if descending and sort in ("rank", "symbol"):
        hits.reverse()
    rows = [{"hit": hit, "values": [(m, hit.metrics.get(m["key"])) for m in metrics],
             "spark": charts.sparkline_points(hit.sparkline), "rising": charts.sparkline_rising(hit.sparkline)}
            for hit in hits]
    headers = []
    for key_, label, title, numeric in [("rank", "#", "Rank", True), ("symbol", "Name", "Symbol", False),
                                        ("score", "Score", "Score", True),
                                        *((m["key"], m.get("short") or m["label"], m["label"], True) for m in metrics)]:
        active = key_ == sort
        # A first click sorts numbers highest first (ranks and names from the top); a second click flips.
        first_desc = key_ not in ("rank", "symbol")
        want_desc = (not descending) if active else first_desc
        query = request.GET.copy()
        query["sort"], query["dir"] = key_, "desc" if want_desc else "asc"
        headers.append({"key": key_, "label": label, "title": title, "numeric": numeric,
                        "href": f"?{query.urlencode()}#hits",
                        "active": active, "aria": ("descending" if descending else "ascending") if active else None})
    try:
        overrides = services.overrides_of(run)
    except services.ScanError:  # parameters of an older version: saved as they are
        overrides = run.params
    top = max((entry["passed"] for entry in run.funnel[:1]), default=0) or 1
    funnel = [{**entry, "width": round(100 * entry["passed"] / top, 1)} for entry in run.funnel]
    return {"rows": rows, "metrics": metrics, "headers": headers, "sort": sort, "descending": descending, "funnel": funnel,
            "changes": run.changes(), "sessions": sorted(run.context.get("sessions", {}).items()),
            "benchmarks": sorted(run.context.get("benchmarks", {}).items()),
            "without_bars": run.context.get("calendars_without_bars", []),
            "overrides_json": json.dumps(overrides, sort_keys=True),
            "save_form": SaveScreenForm(initial={"screen": run.screen, "universe": run.universe, "daily": True})}


def _saved_and_recent(user):
    # A saved screen's latest run is the one run last, as the results page's default is.
    runs = ScanRun.objects.visible_to(user)
    latest = runs.successful().filter(saved_screen=OuterRef("pk")).order_by("-created_at", "-id")
    saved = SavedScreen.objects.order_by("name").annotate(
        last_run=Subquery(latest.values("pk")[:1]), last_as_of=Subquery(latest.values("as_of")[:1]),
        last_hits=Subquery(latest.values("hit_count")[:1]))
    return {"saved": saved, "recent": runs.for_list().order_by("-created_at", "-id")[:RECENT_RUNS]}


@require_POST
def save_screen(request):
    """POST: save the scan form's screen, universe and parameters under a name (replacing one of that name
    that its creator, or staff, saved before)."""
    form = SaveScreenForm(request.POST)
    problems = _errors(form) if not form.is_valid() else []
    if not problems:
        data = form.cleaned_data
        try:
            saved = services.save_screen(name=data["name"], screen=data["screen"], universe=data["universe"],
                                         params=data["params"] or {}, daily=data["daily"],
                                         description=data["description"], user=request.user)
        except services.ScanError as exc:
            problems.append(exc.detail)
        else:
            messages.success(request, f"Saved screen {saved.name}{' (runs daily after ingest)' if saved.daily else ''}.")
            return redirect(f"{reverse('scanner:scanner')}?screen={saved.name}")
    for problem in problems:
        messages.error(request, f"Not saved: {problem}")
    return redirect("scanner:scanner")


@require_POST
def delete_screen(request, name):
    """POST: delete a saved screen (its creator or staff); its runs stay, as ad-hoc runs of the screen."""
    saved = get_object_or_404(SavedScreen, name=name)
    if not (request.user.is_staff or (saved.created_by_id and saved.created_by_id == request.user.pk)):
        raise PermissionDenied("Only its creator or staff may delete a saved screen.")
    saved.delete()
    messages.success(request, f"Deleted saved screen {name}.")
    return redirect("scanner:scanner")


def hit_detail(request, hit_id):
    """One hit: the instrument's adjusted chart around the scan with the setup marked, and every metric
    and rule that put it on the list."""
    hits = ScanHit.objects.filter(run__in=ScanRun.objects.visible_to(request.user))
    hit = get_object_or_404(hits.select_related("run", "run__saved_screen", "instrument"), pk=hit_id)
    run, instrument = hit.run, hit.instrument
    params = run.params
    start = run.as_of - dt.timedelta(days=CHART_BEFORE_DAYS)
    end = run.as_of + dt.timedelta(days=CHART_AFTER_DAYS)
    rows = list(instrument.bars.clean().between(start, end).order_by("date").values_list(*market_charts.BAR_COLUMNS))
    chart_json = None
    if rows:
        frame = market_charts.bars_frame(rows)
        high_window = params.get("high_window") or params.get("window")
        figure = charts.setup_figure(
            frame, as_of=run.as_of, title=f"{instrument.symbol} ({instrument.exchange}), adjusted: {run.name} setup",
            ma_windows=params.get("ma_windows", ()),
            high=hit.metrics.get(f"high_{high_window}") if high_window else None, high_window=high_window,
            window_sessions=params.get("atr_short"))
        chart_json = mark_safe(market_charts.figure_json(figure))
    explained = [{**m, "value": hit.metrics.get(m["key"])} for m in run.context.get("metrics", [])]
    after = sum(1 for row in rows if row[0] > run.as_of)
    return render(request, "scanner/scanhit_detail.html", {
        "hit": hit, "run": run, "instrument": instrument, "chart_json": chart_json, "explained": explained,
        "rules": run.funnel, "bars_after": after,
    })


def replays(request):
    """Replays: the form and the latest replays. POST starts one.

    The form is pre-filled from ?run= (that scan's screen, universe and parameters, over the years up to
    its as-of date) or from ?screen=&universe= (over the years up to the latest session the panels hold).
    """
    errors = []
    initial = {"screen": request.GET.get("screen", "momentum-us"), "universe": request.GET.get("universe", ""),
               "horizons": "5,20,60", "only_new": True}
    run_id = request.GET.get("run", "")
    source = (ScanRun.objects.visible_to(request.user).select_related("saved_screen").filter(pk=int(run_id)).first()
              if run_id.isdigit() else None)
    if source is not None:
        try:
            overrides = services.overrides_of(source, saved=source.saved_screen)
        except services.ScanError:
            overrides = source.params
        initial.update(screen=source.name, universe=source.universe, params=overrides or None)
    universe = initial["universe"] or SavedScreen.objects.filter(name=initial["screen"]).values_list(
        "universe", flat=True).first() or ""
    initial["start"], initial["end"] = services.replay_range(universe=universe, end=source.as_of if source else None)
    form = ReplayForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                replay = services.start_replay(screen=data["screen"], universe=data["universe"] or None,
                                               start=data["start"], end=data["end"], params=data["params"] or None,
                                               horizons=data["horizons"], only_new=data["only_new"],
                                               requested_by=request.user)
            except services.ScanError as exc:
                errors.append(exc.detail)
            else:
                tasks.enqueue_replay(replay.pk)
                return redirect("scanner:replay_detail", replay_id=replay.pk)
        else:
            errors += _errors(form)
    listed = (ScanReplay.objects.visible_to(request.user).select_related("saved_screen", "requested_by")
              .defer("hits", "daily"))
    return render(request, "scanner/scanreplay_list.html", {
        "form": form, "errors": errors, "replays": listed[:RECENT_REPLAYS], **_choices(),
    }, status=400 if errors else 200)


def replay_detail(request, replay_id):
    """One replay: forward returns of the hits against the universe per horizon, hits per day, the hits."""
    visible = ScanReplay.objects.visible_to(request.user).select_related("saved_screen", "requested_by")
    replay = get_object_or_404(visible, pk=replay_id)
    context = {"replay": replay}
    if replay.status == JobStatus.SUCCESS:
        horizons = replay.summary.get("horizons", [])
        context.update({
            "horizons": horizons,
            "returns_json": mark_safe(market_charts.figure_json(charts.replay_figure(horizons))),
            "daily_json": mark_safe(market_charts.figure_json(charts.hits_per_day_figure(replay.daily))),
            # The latest days first, each day's best score first (the stored order is by date, then score).
            "hits": sorted(replay.hits[-REPLAY_HITS_SHOWN:], key=lambda h: (h["date"], h["score"] or 0), reverse=True),
            "fwd_keys": [f"fwd_{k}" for k in replay.horizons],
        })
    return render(request, "scanner/scanreplay_detail.html", context)


@require_POST
def backtest_scan(request, run_id):
    """POST: start the breakout strategy's backtest with this momentum-breakout scan's rules, go to its page."""
    run = get_object_or_404(ScanRun.objects.visible_to(request.user).for_list(), pk=run_id)
    return _backtest(request, run, reverse("scanner:run_detail", kwargs={"run_id": run.pk}))


@require_POST
def backtest_replay(request, replay_id):
    """POST: the same for a replay, over the replay's dates."""
    replay = get_object_or_404(ScanReplay.objects.visible_to(request.user).select_related("saved_screen")
                               .defer("hits", "daily"), pk=replay_id)
    return _backtest(request, replay, reverse("scanner:replay_detail", kwargs={"replay_id": replay.pk}))


def _backtest(request, source, back):
    try:
        run = services.start_screen_backtest(source=source, requested_by=request.user)
    except services.ScanError as exc:
        messages.error(request, f"Backtest not started: {exc.detail}")
        return redirect(back)
    return redirect("strategies:backtest_detail", pk=run.pk)
