"""Admin for market data: the place where a person looks at and corrects instruments and bars."""
from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import F
from django.db.models.functions import Mod
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from quant.flags import FLAG_LABELS, describe_flags

from . import review
from .models import BarCorrection, CorporateAction, IndexMembership, IngestRun, Instrument, PriceBar


class EstimatedCountPaginator(Paginator):
    """Exact counts for filtered lists; the planner's row estimate for a whole big PostgreSQL table.

    COUNT(*) over millions of bars takes seconds on PostgreSQL; the changelist only needs it to draw
    page links, where an estimate is good enough.
    """

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            model = self.object_list.model
            connection = connections[self.object_list.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                                   [model._meta.db_table])
                    row = cursor.fetchone()
                # -1 or 0 before the first ANALYZE: fall back to the real count.
                if row and row[0] > 0:
                    return row[0]
        return super().count


class CorporateActionInline(admin.TabularInline):
    model = CorporateAction
    extra = 0
    fields = ("kind", "ex_date", "ratio", "amount", "source")
    ordering = ("-ex_date",)


class IndexMembershipInline(admin.TabularInline):
    model = IndexMembership
    extra = 0
    fields = ("index_code", "start", "end")


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ("symbol", "exchange", "currency", "name", "asset_type", "sector", "active",
                    "listed_on", "delisted_on")
    list_filter = ("exchange", "asset_type", "active", "currency")
    search_fields = ("symbol", "name")
    ordering = ("symbol", "exchange")
    readonly_fields = ("bars_link", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("symbol", "exchange", "currency", "name", "sector", "asset_type")}),
        ("Listing", {"fields": ("active", "listed_on", "delisted_on")}),
        ("Data", {"fields": ("bars_link", "created_at", "updated_at")}),
    )
    inlines = (CorporateActionInline, IndexMembershipInline)

    @admin.display(description="Bars")
    def bars_link(self, instrument):
        if instrument.pk is None:
            return "-"
        url = reverse("admin:marketdata_pricebar_changelist") + f"?instrument__id__exact={instrument.pk}"
        return format_html('<a href="{}">Daily bars of {}</a>', url, instrument.key)


class FlagReasonFilter(admin.SimpleListFilter):
    title = "quality flag"
    parameter_name = "flag"

    def lookups(self, request, model_admin):
        return [("any", "Any flag"), ("none", "No flag")] + [(str(bit), label) for bit, label in FLAG_LABELS.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "any":
            return queryset.exclude(flags=0)
        if value == "none":
            return queryset.filter(flags=0)
        if value and value.isdigit():
            bit = int(value)
            # Bitwise AND is not a Django lookup on every backend; a bit is set when flags mod 2b >= b.
            return queryset.alias(bit_rest=Mod(F("flags"), 2 * bit)).filter(bit_rest__gte=bit)
        return queryset


class PriceBarForm(forms.ModelForm):
    """Edits the flags bitmask as ticked reasons rather than as an integer."""

    reasons = forms.TypedMultipleChoiceField(
        choices=[(bit, label) for bit, label in FLAG_LABELS.items()], coerce=int, required=False,
        widget=forms.CheckboxSelectMultiple, label="Quality flags",
    )

    class Meta:
        model = PriceBar
        fields = ("instrument", "date", "open", "high", "low", "close", "volume", "adj_factor",
                  "source", "quarantined")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reasons"].initial = [bit for bit in FLAG_LABELS if self.instance.flags & bit]

    def save(self, commit=True):
        flags = 0
        for bit in self.cleaned_data.get("reasons", []):
            flags |= bit
        self.instance.flags = flags
        return super().save(commit)


@admin.register(PriceBar)
class PriceBarAdmin(admin.ModelAdmin):
    form = PriceBarForm
    list_display = ("instrument", "date", "open", "high", "low", "close", "volume", "adj_factor",
                    "flag_summary", "quarantined", "source")
    # No filter on `source`: listing its values is a DISTINCT over every bar.
    list_filter = ("quarantined", FlagReasonFilter, "instrument__exchange")
    # Exact symbol match: an index lookup, where 'contains' would scan millions of bars.
    search_fields = ("=instrument__symbol",)
    search_help_text = "Exact symbol, e.g. BHP"
    autocomplete_fields = ("instrument",)
    list_select_related = ("instrument",)
    ordering = ("-date", "instrument_id")  # walks pricebar_date_idx; no join just to sort
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100
    readonly_fields = ("flag_labels_display", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("instrument", "date", "source")}),
        ("Prices (raw, as received)", {"fields": ("open", "high", "low", "close", "volume", "adj_factor")}),
        ("Quality", {"fields": ("reasons", "quarantined", "flag_labels_display")}),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )
    actions = ("accept_bars", "quarantine_bars", "release_bars")

    def get_readonly_fields(self, request, obj=None):
        # A bar's identity is (instrument, date); fixing either means a different bar.
        if obj is not None:
            return ("instrument", "date", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="Flags")
    def flag_summary(self, bar):
        return ", ".join(describe_flags(bar.flags)) or "-"

    @admin.display(description="Flag reasons")
    def flag_labels_display(self, bar):
        return "; ".join(describe_flags(bar.flags)) or "none"

    @admin.action(description="Quarantine selected bars (leave them out of analytics)")
    def quarantine_bars(self, request, queryset):
        n = queryset.filter(quarantined=False).update(quarantined=True, updated_at=timezone.now())
        self.message_user(request, f"{n} bar(s) quarantined.", messages.SUCCESS)

    @admin.action(description="Release selected bars from quarantine")
    def release_bars(self, request, queryset):
        n = queryset.filter(quarantined=True).update(quarantined=False, updated_at=timezone.now())
        self.message_user(request, f"{n} bar(s) released.", messages.SUCCESS)

    @admin.action(description="Accept selected bars as they are (reviewed, out of quarantine, recorded)")
    def accept_bars(self, request, queryset):
        bars = list(queryset.filter(reviewed=False))
        for bar in bars:
            review.accept_bar(bar, user=request.user, reason="accepted from the admin bar list")
        self.message_user(request, f"{len(bars)} bar(s) accepted.", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        """An edit of a stored bar is a fix: recorded as a BarCorrection with the values before and after."""
        if not change:
            return super().save_model(request, obj, form, change)
        old = review.snapshot(PriceBar.objects.get(pk=obj.pk))
        obj.reviewed = True
        super().save_model(request, obj, form, change)
        BarCorrection.objects.create(bar=obj, instrument_id=obj.instrument_id, date=obj.date,
                                     action=BarCorrection.Action.FIX, old_values=old,
                                     new_values=review.snapshot(obj), reason="edited in the admin",
                                     changed_by=request.user)

    def delete_model(self, request, obj):
        review.drop_bar(obj, user=request.user, reason="deleted in the admin")

    def delete_queryset(self, request, queryset):
        for bar in queryset:
            review.drop_bar(bar, user=request.user, reason="deleted in the admin")


@admin.register(BarCorrection)
class BarCorrectionAdmin(admin.ModelAdmin):
    """The review history: written by accept/fix/drop, never edited or deleted by hand."""

    list_display = ("changed_at", "instrument", "date", "action", "changed_by", "reason")
    list_filter = ("action", "instrument__exchange")
    search_fields = ("=instrument__symbol",)
    search_help_text = "Exact symbol, e.g. XAM"
    list_select_related = ("instrument", "changed_by")
    date_hierarchy = "changed_at"
    fields = ("bar", "instrument", "date", "action", "old_values", "new_values", "reason", "changed_by", "changed_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CorporateAction)
class CorporateActionAdmin(admin.ModelAdmin):
    list_display = ("instrument", "kind", "ex_date", "ratio", "amount", "source")
    list_filter = ("kind", "source", "instrument__exchange")
    search_fields = ("=instrument__symbol",)
    search_help_text = "Exact symbol, e.g. AAPL"
    date_hierarchy = "ex_date"
    autocomplete_fields = ("instrument",)
    list_select_related = ("instrument",)
    readonly_fields = ("created_at",)


@admin.register(IndexMembership)
class IndexMembershipAdmin(admin.ModelAdmin):
    list_display = ("index_code", "instrument", "start", "end")
    list_filter = ("index_code",)
    search_fields = ("index_code", "=instrument__symbol")
    autocomplete_fields = ("instrument",)
    list_select_related = ("instrument",)


@admin.register(IngestRun)
class IngestRunAdmin(admin.ModelAdmin):
    """Runs are records written by the ingest; only a stuck run's status may be set by hand."""

    list_display = ("id", "provider", "status", "started_at", "duration", "symbols", "rows_read",
                    "rows_inserted", "rows_updated", "rows_unchanged", "rows_flagged", "requested_by")
    list_filter = ("status", "provider")
    date_hierarchy = "started_at"
    search_fields = ("provider",)
    list_select_related = ("requested_by",)
    fields = ("provider", "status", "params", "started_at", "finished_at", "symbols", "rows_read",
              "rows_inserted", "rows_updated", "rows_unchanged", "rows_flagged", "errors", "requested_by")
    readonly_fields = tuple(f for f in fields if f != "status")

    def has_add_permission(self, request):
        return False
