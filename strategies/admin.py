"""Admin for backtest runs: records of what ran; only a stuck run's status and error may be set by hand."""
from django.contrib import admin

from .models import BacktestRun


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = ("id", "strategy", "universe", "start", "end", "status", "survivorship_biased",
                    "created_at", "duration", "requested_by")
    list_filter = ("status", "strategy", "survivorship_biased")
    search_fields = ("strategy", "universe", "code_version")
    date_hierarchy = "created_at"
    list_select_related = ("requested_by",)
    fields = ("strategy", "universe", "start", "end", "params", "status", "error", "code_version",
              "survivorship_biased", "metrics", "equity_path", "trades_path", "requested_by",
              "created_at", "started_at", "finished_at")
    readonly_fields = tuple(f for f in fields if f not in ("status", "error"))

    def has_add_permission(self, request):
        return False
