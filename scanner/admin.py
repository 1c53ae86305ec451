"""Admin for scans: saved screens are edited here; runs and replays are records of what ran and what it found
(only a stuck run's status and error may be set)."""
from django import forms
from django.contrib import admin

from .models import SavedScreen, ScanHit, ScanReplay, ScanRun


class SavedScreenForm(forms.ModelForm):
    """The same checks as the page and the API: a saved screen that cannot run is refused, naming the field."""

    class Meta:
        model = SavedScreen
        fields = ("name", "screen", "universe", "params", "daily", "description")

    def clean(self):
        from . import services

        data = super().clean()
        try:
            if data.get("universe"):
                data["universe"] = "+".join(services.universe_codes(data["universe"]))
            if data.get("screen"):
                services.requested_params(data["screen"], data.get("params") or {})
        except services.ScanError as exc:
            self.add_error("params" if (exc.field or "").startswith("params") else exc.field or None, str(exc))
        return data


@admin.register(SavedScreen)
class SavedScreenAdmin(admin.ModelAdmin):
    form = SavedScreenForm
    list_display = ("name", "screen", "universe", "daily", "updated_at", "created_by")
    list_filter = ("screen", "daily")
    search_fields = ("name", "universe", "description")
    fields = ("name", "screen", "universe", "params", "daily", "description", "created_by", "created_at", "updated_at")
    readonly_fields = ("created_by", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


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
    list_display = ("id", "screen", "saved_screen", "universe", "as_of", "status", "hit_count", "created_at",
                    "duration", "requested_by")
    list_filter = ("status", "screen", "universe")
    search_fields = ("screen", "universe", "saved_screen__name")
    date_hierarchy = "as_of"
    list_select_related = ("requested_by", "saved_screen")
    fields = ("screen", "saved_screen", "universe", "as_of", "params", "status", "error", "funnel", "hit_count",
              "context", "requested_by", "created_at", "started_at", "finished_at")
    readonly_fields = tuple(f for f in fields if f not in ("status", "error"))
    inlines = (ScanHitInline,)

    def has_add_permission(self, request):
        return False


@admin.register(ScanHit)
class ScanHitAdmin(admin.ModelAdmin):
    list_display = ("run", "rank", "instrument", "score")
    list_filter = ("run__screen", "run__universe")
    search_fields = ("=instrument__symbol",)
    list_select_related = ("run", "run__saved_screen", "instrument")
    readonly_fields = ("run", "instrument", "rank", "score", "metrics", "sparkline")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ScanReplay)
class ScanReplayAdmin(admin.ModelAdmin):
    list_display = ("id", "screen", "saved_screen", "universe", "start", "end", "status", "created_at", "requested_by")
    list_filter = ("status", "screen", "universe")
    list_select_related = ("requested_by", "saved_screen")
    fields = ("screen", "saved_screen", "universe", "start", "end", "horizons", "only_new", "params", "status",
              "error", "summary", "requested_by", "created_at", "started_at", "finished_at")
    readonly_fields = tuple(f for f in fields if f not in ("status", "error"))

    def has_add_permission(self, request):
        return False
