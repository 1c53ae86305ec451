"""Backtest runs and parameter sweeps: one row per run or sweep, its parameters, data range, outcome and artifacts."""
from django.db import models

from parakeet.jobs import Job, JobQuerySet


class BacktestRunQuerySet(JobQuerySet):
    def finished(self):
        return self.filter(status="success")

    def latest_per_strategy(self):
        """The newest successful run of each strategy among these (the performance comparison)."""
        newest = (self.finished().filter(strategy=models.OuterRef("strategy"))
                  .order_by("-finished_at", "-id").values("id")[:1])
        return self.finished().filter(id=models.Subquery(newest)).order_by("strategy")


class BacktestRun(Job):
    """A strategy run over a universe and date range with fixed parameters, costs always on.

    params holds {"strategy": validated strategy parameters, "engine": fill, delay, costs, capital,
    shares}; metrics the summary of the strategy and its benchmark, the bias check and the PSR.
    """

    strategy = models.CharField(max_length=64)
    universe = models.CharField(max_length=32, blank=True, help_text="Index code or explicit symbol list")
    start = models.DateField()
    end = models.DateField()
    code_version = models.CharField(max_length=64, blank=True, help_text="git commit the run was made with")
    survivorship_biased = models.BooleanField(default=False, help_text="Universe is today's members run over the past")
    metrics = models.JSONField(default=dict, blank=True)
    equity_path = models.CharField(max_length=255, blank=True, help_text="Parquet artifact in the marketdata storage")
    trades_path = models.CharField(max_length=255, blank=True)
    universe_note = models.CharField(max_length=200, blank=True,
                                     help_text="How the universe was built, and why it is or is not survivorship-biased")
    first_bar = models.DateField(null=True, blank=True, help_text="First bar actually traded over")
    last_bar = models.DateField(null=True, blank=True, help_text="Last bar actually traded over")
    instruments = models.PositiveIntegerField(default=0, help_text="Instruments with prices in the run")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent per step")
    log = models.JSONField(default=list, blank=True, help_text="Orders not placed and why (the first 200)")

    objects = BacktestRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(end__gte=models.F("start")), name="backtest_end_after_start")]

    def __str__(self):
        return f"{self.strategy} #{self.pk} {self.start}..{self.end}"

    @property
    def round_trips_path(self):
        return self.trades_path.replace("trades.parquet", "round_trips.parquet") if self.trades_path else ""


class BacktestSweep(Job):
    """A grid of parameter sets of one strategy, run as chunks (Celery tasks) and validated together.

    params holds {"base": fixed strategy parameters, "grid": {name: [values]}, "engine": {...},
    "walk_forward": {"train": bars, "test": bars}}; each parameter set's outcome is a SweepResult.
    """

    strategy = models.CharField(max_length=64)
    universe = models.CharField(max_length=32)
    start = models.DateField()
    end = models.DateField()
    code_version = models.CharField(max_length=64, blank=True)
    survivorship_biased = models.BooleanField(default=False)
    combinations = models.PositiveIntegerField()
    chunks = models.PositiveIntegerField()
    validation = models.JSONField(default=dict, blank=True,
                                  help_text="Best set, deflated Sharpe over all trials, walk-forward folds")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(end__gte=models.F("start")), name="sweep_end_after_start")]

    def __str__(self):
        return f"{self.strategy} sweep #{self.pk} ({self.combinations} sets)"

    def returns_path(self, chunk):
        return f"backtests/sweeps/{self.pk}/chunk-{chunk:04d}.parquet"


class SweepResult(models.Model):
    """One parameter set of a sweep: its parameters, summary metrics and which worker computed it."""

    sweep = models.ForeignKey(BacktestSweep, on_delete=models.CASCADE, related_name="results")
    index = models.PositiveIntegerField(help_text="Position in the grid")
    chunk = models.PositiveIntegerField()
    params = models.JSONField()
    metrics = models.JSONField(default=dict)
    worker = models.CharField(max_length=200, blank=True, help_text="Celery worker host, 'eager' when in-process")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sweep", "index"]
        constraints = [models.UniqueConstraint(fields=["sweep", "index"], name="sweepresult_sweep_index_uniq")]

    def __str__(self):
        return f"sweep #{self.sweep_id} set {self.index}"
