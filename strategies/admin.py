"""Admin for backtest runs and sweeps: records of what ran; only a stuck job's status and error may be set by hand."""
from django.contrib import admin

from .models import BacktestRun, BacktestSweep, SweepResult


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = ("id", "strategy", "universe", "start", "end", "status", "survivorship_biased",
                    "created_at", "duration", "requested_by")
    list_filter = ("status", "strategy", "survivorship_biased")
    search_fields = ("strategy", "universe", "code_version")
    date_hierarchy = "created_at"
    list_select_related = ("requested_by",)
    fields = ("strategy", "universe", "universe_note", "start", "end", "first_bar", "last_bar", "instruments",
              "params", "status", "error", "code_version", "survivorship_biased", "metrics", "timings", "log",
              "equity_path", "trades_path", "requested_by", "created_at", "started_at", "finished_at")
    readonly_fields = tuple(f for f in fields if f not in ("status", "error"))

    def has_add_permission(self, request):
        return False


class SweepResultInline(admin.TabularInline):
    model = SweepResult
    fields = ("index", "chunk", "params", "metrics", "worker", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(BacktestSweep)
class BacktestSweepAdmin(admin.ModelAdmin):
    list_display = ("id", "strategy", "universe", "start", "end", "combinations", "chunks", "status", "created_at",
                    "requested_by")
    list_filter = ("status", "strategy")
    list_select_related = ("requested_by",)
    fields = ("strategy", "universe", "start", "end", "params", "combinations", "chunks", "status", "error",
              "code_version", "survivorship_biased", "validation", "requested_by", "created_at", "started_at",
              "finished_at")
    readonly_fields = tuple(f for f in fields if f not in ("status", "error"))
    inlines = [SweepResultInline]

    def has_add_permission(self, request):
        return False
