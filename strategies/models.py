"""Backtest runs: one row per run, its parameters, data range, outcome and where its artifacts are."""
from django.db import models

from parakeet.jobs import Job


class BacktestRun(Job):
    """A strategy run over a universe and date range with fixed parameters, costs always on."""

    strategy = models.CharField(max_length=64)
    universe = models.CharField(max_length=32, blank=True, help_text="Index code or explicit symbol list")
    start = models.DateField()
    end = models.DateField()
    code_version = models.CharField(max_length=64, blank=True, help_text="git commit the run was made with")
    survivorship_biased = models.BooleanField(default=False, help_text="Universe is today's members run over the past")
    metrics = models.JSONField(default=dict, blank=True)
    equity_path = models.CharField(max_length=255, blank=True, help_text="Parquet artifact in the marketdata storage")
    trades_path = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(end__gte=models.F("start")), name="backtest_end_after_start")]

    def __str__(self):
        return f"{self.strategy} #{self.pk} {self.start}..{self.end}"
