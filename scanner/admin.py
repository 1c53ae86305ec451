"""Admin for scans: records of what ran and what it found; only a stuck run's status and error may be set."""
from django.contrib import admin

from .models import ScanHit, ScanRun


class ScanHitInline(admin.TabularInline):
    model = ScanHit
    fields = ("rank", "instrument", "score", "metrics")
    readonly_fields = fields
    ordering = ("rank",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("instrument")


@admin.register(ScanRun)
class ScanRunAdmin(admin.ModelAdmin):
    list_display = ("id", "screen", "universe", "as_of", "status", "created_at", "duration", "requested_by")
    list_filter = ("status", "screen", "universe")
    search_fields = ("screen", "universe")
    date_hierarchy = "as_of"
    list_select_related = ("requested_by",)
    fields = ("screen", "universe", "as_of", "params", "status", "error", "funnel", "requested_by",
              "created_at", "started_at", "finished_at")
    readonly_fields = tuple(f for f in fields if f not in ("status", "error"))
    inlines = (ScanHitInline,)

    def has_add_permission(self, request):
        return False


@admin.register(ScanHit)
class ScanHitAdmin(admin.ModelAdmin):
    list_display = ("run", "rank", "instrument", "score")
    list_filter = ("run__screen", "run__universe")
    search_fields = ("=instrument__symbol",)
    list_select_related = ("run", "instrument")
    readonly_fields = ("run", "instrument", "rank", "score", "metrics")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
