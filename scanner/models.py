"""Scans: saved screens, one row per screen run over a universe as of a date, the names it found, replays."""
import json

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from parakeet.jobs import Job, JobQuerySet, JobStatus
from quant.screen_names import SCREEN_LABELS

SCREEN_CHOICES = list(SCREEN_LABELS.items())


def screen_label(key):
    """'momentum_breakout' -> 'Momentum breakout' (an unknown key is shown as it is)."""
    return SCREEN_LABELS.get(key, key)


class OfScreen:
    """What a run and a replay share: they ran `screen`, perhaps as a saved screen."""

    @property
    def name(self):
        """The saved screen's name, or the built-in screen's key for an ad-hoc run."""
        return self.saved_screen.name if self.saved_screen_id else self.screen

    @property
    def screen_label(self):
        return screen_label(self.screen)

    @property
    def params_json(self):
        """The parameters as indented JSON, keys sorted (how the pages show them)."""
        return json.dumps(self.params, indent=1, sort_keys=True)


class SavedScreen(models.Model):
    """A screen with its parameters and universe under a name; `daily` ones run after each ingest."""

    name = models.CharField(
        max_length=64, unique=True,
        validators=[RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", "lower-case letters, digits, - and _ only")],
        help_text="What `manage.py scan --screen` and the API call it, e.g. momentum-us")
    screen = models.CharField(max_length=32, choices=SCREEN_CHOICES)
    universe = models.CharField(max_length=32, help_text="A universe code (SP500, ASX300) or codes joined by +")
    params = models.JSONField(default=dict, blank=True, help_text="Only the parameters that differ from the defaults")
    daily = models.BooleanField(default=True, help_text="Run by the daily chain after each of its exchanges' ingest")
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def screen_label(self):
        return screen_label(self.screen)


class ScanRunQuerySet(JobQuerySet):
    def successful(self):
        return self.filter(status=JobStatus.SUCCESS)

    def for_list(self):
        """The runs table: the saved screen's name and the requester in the same query."""
        return self.select_related("saved_screen", "requested_by")

    def named(self, name):
        """Runs of the saved screen `name`, or ad-hoc runs of the built-in screen `name`."""
        name = (name or "").strip().lower()
        return self.filter(models.Q(saved_screen__name=name) | models.Q(saved_screen__isnull=True, screen=name))

    def latest_result(self, *, screen=None, universe=None, as_of=None):
        """The run the results page and API show by default: the successful run created last (the scan the
        trader ran last, whatever its date), optionally of one screen (saved name or built-in key) and
        universe. With `as_of`: the run as of that date or the nearest date before (the last created of
        those on that date)."""
        runs = self.successful().for_list()
        if screen:
            runs = runs.named(screen)
        if universe:
            runs = runs.filter(universe=universe.strip().upper())
        if as_of:
            return runs.filter(as_of__lte=as_of).order_by("-as_of", "-created_at", "-id").first()
        return runs.order_by("-created_at", "-id").first()


class ScanRun(OfScreen, Job):
    """A screen run over a universe using only data up to `as_of`; the funnel says who passed each rule.

    `as_of` is the latest session the data had on or before the requested date; `context` records the
    requested date, the session used per exchange calendar, the benchmark of each and how long it took.
    """

    screen = models.CharField(max_length=64)
    universe = models.CharField(max_length=32)
    as_of = models.DateField()
    funnel = models.JSONField(default=list, blank=True, help_text="[{rule, label, passed, alone}], in rule order")
    saved_screen = models.ForeignKey(SavedScreen, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="runs")
    context = models.JSONField(default=dict, blank=True,
                               help_text="requested_as_of, sessions per calendar, benchmarks, timings")
    hit_count = models.PositiveIntegerField(default=0)

    objects = ScanRunQuerySet.as_manager()

    class Meta:
        ordering = ["-as_of", "-created_at", "-id"]
        indexes = [models.Index(fields=["screen", "universe", "-as_of"], name="scanrun_latest_idx")]

    def __str__(self):
        return f"{self.name} {self.universe} {self.as_of}"

    def previous(self):
        """The run this one is compared with: the latest successful run before `as_of` of the same saved
        screen and universe (an ad-hoc run: the same screen, universe and parameters), or None. Only runs
        its requester may see count (their own and the desk's): another trader's research stays theirs."""
        earlier = (ScanRun.objects.successful().filter(universe=self.universe, as_of__lt=self.as_of)
                   .order_by("-as_of", "-created_at", "-id"))
        earlier = earlier.filter(models.Q(requested_by__isnull=True) | models.Q(requested_by_id=self.requested_by_id)
                                 if self.requested_by_id else models.Q(requested_by__isnull=True))
        if self.saved_screen_id:
            return earlier.filter(saved_screen_id=self.saved_screen_id).first()
        # JSON equality differs between SQLite (text) and PostgreSQL (jsonb): compare the dicts here.
        for run in earlier.filter(saved_screen__isnull=True, screen=self.screen)[:50]:
            if run.params == self.params:
                return run
        return None


    def changes(self):
        """What changed since the previous run: {"previous": that run or None, "new": instruments found now
        but not then (in rank order), "dropped": instruments found then but not now (by symbol)}."""
        from marketdata.models import Instrument

        previous = self.previous() if self.status == JobStatus.SUCCESS else None
        if previous is None:
            return {"previous": None, "new": [], "dropped": []}
        before = set(previous.hits.values_list("instrument_id", flat=True))
        now = list(self.hits.order_by("rank").values_list("instrument_id", flat=True))
        found = Instrument.objects.in_bulk([pk for pk in now if pk not in before])
        return {
            "previous": previous,
            "new": [found[pk] for pk in now if pk in found],
            "dropped": list(Instrument.objects.filter(pk__in=before - set(now)).order_by("symbol", "exchange")),
        }


class ScanHit(models.Model):
    """One name a scan found, its rank and the metrics that qualified it."""

    run = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="hits")
    instrument = models.ForeignKey("marketdata.Instrument", on_delete=models.CASCADE, related_name="scan_hits")
    rank = models.PositiveIntegerField()
    score = models.FloatField()
    metrics = models.JSONField(default=dict)
    sparkline = models.JSONField(default=list, blank=True, help_text="Adjusted closes of the last sessions to as_of")

    class Meta:
        ordering = ["run", "rank"]
        constraints = [models.UniqueConstraint(fields=["run", "instrument"], name="scanhit_uniq")]

    def __str__(self):
        return f"{self.run} #{self.rank} {self.instrument.symbol}"


class ScanReplay(OfScreen, Job):
    """A screen replayed day by day over [start, end] on point-in-time universes, and how its hits did.

    `summary` holds the forward returns of the hits and of the universe per horizon (quant.screens.replay);
    `hits` every hit with its forward returns; `daily` the number of hits and members per session.
    """

    screen = models.CharField(max_length=32, choices=SCREEN_CHOICES)
    saved_screen = models.ForeignKey(SavedScreen, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="replays")
    universe = models.CharField(max_length=32)
    start = models.DateField()
    end = models.DateField()
    horizons = models.JSONField(default=list, help_text="Sessions after each hit its return is measured over")
    only_new = models.BooleanField(default=True, help_text="Count a name when it enters the list, not every day on it")
    summary = models.JSONField(default=dict, blank=True)
    hits = models.JSONField(default=list, blank=True)
    daily = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"replay {self.screen} {self.universe} {self.start}..{self.end}"
