"""Scanner endpoints: start a scan (202), read results with what changed, saved screens, replays."""
import datetime as dt
from typing import Optional

from django.urls import reverse
from ninja import Router, Status
from ninja.errors import ValidationError
from ninja.pagination import paginate

from marketdata.schemas import Message, ValidationErrorOut
from parakeet.lazy import lazy_module
from parakeet.pagination import PageNumberPagination

from . import tasks
from .models import SavedScreen, ScanReplay, ScanRun
from .schemas import (
    ReplayIn, ReplayOut, ResultsOut, SavedScreenIn, SavedScreenOut, ScanIn, ScanRunOut, ScreensOut,
)

# pandas and the screens: loaded by the first request that scans or lists the screens
quant_screens = lazy_module("quant.screens")
services = lazy_module("scanner.services")

router = Router(tags=["scanner"])

MAX_PAGE_SIZE = 500
ERRORS = {401: Message, 403: Message, 422: ValidationErrorOut}


def invalid(exc, where=("body", "payload")):
    """A ScanError as ninja's 422 body, `loc` naming the field."""
    loc = [*where, *(exc.field.split(".") if exc.field else [])]
    return ValidationError([{"type": "value_error", "loc": loc, "msg": str(exc)}])


def instrument_ref(instrument):
    return {"key": instrument.key, "symbol": instrument.symbol, "exchange": instrument.exchange,
            "name": instrument.name}


def results(run):
    """The results body of `run`: the run, its hits in rank order and the changes since the previous run."""
    hits = [{**instrument_ref(hit.instrument), "rank": hit.rank, "currency": hit.instrument.currency,
             "score": hit.score, "metrics": hit.metrics, "sparkline": hit.sparkline,
             "setup_url": reverse("scanner:hit_detail", args=[hit.pk])}
            for hit in run.hits.select_related("instrument").order_by("rank")]
    changes = run.changes()
    previous = changes["previous"]
    return {"run": run, "hits": hits, "changes": {
        "previous_run": previous and previous.pk, "previous_as_of": previous and previous.as_of,
        "new": [instrument_ref(i) for i in changes["new"]], "dropped": [instrument_ref(i) for i in changes["dropped"]]}}


@router.post("/scan", response={202: ScanRunOut, **ERRORS})
def create_scan(request, payload: ScanIn):
    """Start a scan; answers 202 with the queued run at once and runs it when the request commits
    (in-process without a Celery broker). Poll `GET /scanner/results?run={id}`."""
    try:
        run = services.start_scan(screen=payload.screen, universe=payload.universe, as_of=payload.as_of,
                                  params=payload.params, requested_by=request.user)
    except services.ScanError as exc:
        raise invalid(exc) from exc
    tasks.enqueue_scan(run.pk)
    return Status(202, ScanRun.objects.for_list().get(pk=run.pk))


@router.get("/results", response={200: ResultsOut, **ERRORS, 404: Message})
def get_results(request, run: Optional[int] = None, as_of: Optional[dt.date] = None, screen: Optional[str] = None,
                universe: Optional[str] = None):
    """A scan's funnel and hits. Default: the successful run created last, whatever its as-of date (of
    `screen` and `universe` if given); `as_of`: the successful run as of that date or the nearest session
    before; `run`: that run, whatever its status (a queued or failed run has no hits)."""
    runs = ScanRun.objects.visible_to(request.user)
    if run is not None:
        found = runs.for_list().filter(pk=run).first()
        if found is None:
            raise ScanRun.DoesNotExist(f"no scan run with id {run}")
    else:
        found = runs.latest_result(screen=screen, universe=universe, as_of=as_of)
        if found is None:
            what = " ".join(filter(None, [screen, universe, as_of and f"as of {as_of}"]))
            raise ScanRun.DoesNotExist(f"no successful scan{' ' + what if what else ''} yet")
    return results(found)


@router.get("/runs", response={200: list[ScanRunOut], **ERRORS})
@paginate(PageNumberPagination, max_page_size=MAX_PAGE_SIZE)
def list_scan_runs(request, screen: Optional[str] = None, universe: Optional[str] = None):
    """Your scan runs and the desk's (staff: everyone's), newest as-of first; `screen` (saved name or
    built-in key) and `universe` narrow them."""
    runs = ScanRun.objects.visible_to(request.user).for_list()
    if screen:
        runs = runs.named(screen)
    if universe:
        runs = runs.filter(universe=universe.strip().upper())
    return runs.order_by("-as_of", "-created_at", "-id")


@router.get("/screens", response={200: ScreensOut, **ERRORS})
def list_screens(request):
    """The built-in screens with their default parameters and schema, and the saved screens."""
    screens = [{"key": key, "label": s.label, "description": s.description,
                "defaults": s.params().model_dump(mode="json"), "params_schema": s.params.model_json_schema()}
               for key, s in quant_screens.SCREENS.items()]
    return {"screens": screens, "saved": list(SavedScreen.objects.order_by("name"))}


@router.post("/screens", response={201: SavedScreenOut, **ERRORS})
def save_screen(request, payload: SavedScreenIn):
    """Create a saved screen, or replace one you saved (staff: any); daily ones run after each ingest."""
    try:
        saved = services.save_screen(name=payload.name, screen=payload.screen, universe=payload.universe,
                                     params=payload.params, daily=payload.daily, description=payload.description,
                                     user=request.user)
    except services.ScanError as exc:
        raise invalid(exc) from exc
    return Status(201, saved)


@router.post("/replay", response={202: ReplayOut, **ERRORS})
def create_replay(request, payload: ReplayIn):
    """Replay a screen day by day over [start, end] with point-in-time universes; answers 202 with the
    queued replay and runs it when the request commits. Poll `GET /scanner/replays/{id}`."""
    try:
        replay = services.start_replay(screen=payload.screen, universe=payload.universe, start=payload.start,
                                       end=payload.end, params=payload.params, horizons=payload.horizons,
                                       only_new=payload.only_new, requested_by=request.user)
    except services.ScanError as exc:
        raise invalid(exc) from exc
    tasks.enqueue_replay(replay.pk)
    return Status(202, ScanReplay.objects.select_related("saved_screen", "requested_by").get(pk=replay.pk))


@router.get("/replays/{replay_id}", response={200: ReplayOut, **ERRORS, 404: Message})
def get_replay(request, replay_id: int):
    found = (ScanReplay.objects.visible_to(request.user).select_related("saved_screen", "requested_by")
             .filter(pk=replay_id).first())
    if found is None:
        raise ScanReplay.DoesNotExist(f"no replay with id {replay_id}")
    return found
