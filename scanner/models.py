"""Scans: one row per screen run over a universe as of a date, and the names it found."""
from django.db import models

from parakeet.jobs import Job


class ScanRun(Job):
    """A screen run over a universe using only data up to `as_of`; the funnel says who passed each rule."""

    screen = models.CharField(max_length=64)
    universe = models.CharField(max_length=32)
    as_of = models.DateField()
    funnel = models.JSONField(default=list, blank=True, help_text="[{rule, passed}], in rule order")

    class Meta:
        ordering = ["-as_of", "-created_at", "-id"]
        indexes = [models.Index(fields=["screen", "universe", "-as_of"], name="scanrun_latest_idx")]

    def __str__(self):
        return f"{self.screen} {self.universe} {self.as_of}"


class ScanHit(models.Model):
    """One name a scan found, its rank and the metrics that qualified it."""

    run = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="hits")
    instrument = models.ForeignKey("marketdata.Instrument", on_delete=models.CASCADE, related_name="scan_hits")
    rank = models.PositiveIntegerField()
    score = models.FloatField()
    metrics = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "rank"]
        constraints = [models.UniqueConstraint(fields=["run", "instrument"], name="scanhit_uniq")]

    def __str__(self):
        return f"{self.run} #{self.rank} {self.instrument.symbol}"
