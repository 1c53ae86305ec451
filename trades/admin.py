"""Admin for the journal and portfolios.

Trades are corrected here through the journal: saving the change form records a new version (kind
"corrected", with the admin who made it and the reason), never an in-place edit; cancelling is an action
that also records a version. History rows and snapshots are read-only.
"""
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models

from . import services
from .errors import JournalError
from .formats import parse_date, plain
from .forms import DecimalInput
from .models import (
    CashMovement, ChangeKind, Portfolio, PortfolioSnapshot, Trade, TradeExit, TradeImport, TradeVersion,
)


# Decimals in the change forms as typed (200, not 200.000000).
PLAIN_DECIMALS = {models.DecimalField: {"widget": DecimalInput(attrs={"step": "any"})}}


def _plain_column(field):
    def column(obj):
        value = getattr(obj, field.name)
        return "-" if value is None else plain(value)

    column.__name__ = field.name  # the cell's class: field-quantity
    column.short_description = field.verbose_name
    column.admin_order_field = field.name
    return column


class PlainDecimalsAdmin(admin.ModelAdmin):
    """Decimal columns of the change list as typed (200, 99.5), not as stored (200.000000)."""

    def get_list_display(self, request):
        decimals = {f.name: f for f in self.model._meta.get_fields() if isinstance(f, models.DecimalField)}
        return [_plain_column(decimals[name]) if name in decimals else name
                for name in super().get_list_display(request)]


class ReadOnlyAdmin(PlainDecimalsAdmin):
    """Rows that other code writes and history depends on: visible to the admin, never edited here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PortfolioAdminForm(forms.ModelForm):
    class Meta:
        model = Portfolio
        fields = ("name", "owner", "base_currency", "starting_cash", "inception_date", "benchmark")

    def clean_inception_date(self):
        day = self.cleaned_data["inception_date"]
        first = services.first_activity(self.instance) if self.instance.pk else None
        if first is not None and day > first:
            raise ValidationError(f"The book has activity on {first}, before {day}.")
        return day


@admin.register(Portfolio)
class PortfolioAdmin(PlainDecimalsAdmin):
    form = PortfolioAdminForm
    formfield_overrides = PLAIN_DECIMALS
    list_display = ("name", "owner", "base_currency", "starting_cash", "inception_date", "benchmark",
                    "snapshots_stale_from")
    list_filter = ("base_currency",)
    search_fields = ("name", "owner__username")
    autocomplete_fields = ("owner", "benchmark")
    list_select_related = ("owner", "benchmark")
    readonly_fields = ("created_at", "snapshots_stale_from")

    def get_readonly_fields(self, request, obj=None):
        # The base currency is what every pnl_base and snapshot is in: fixed once the portfolio exists.
        return (*self.readonly_fields, "base_currency") if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and {"starting_cash", "inception_date"} & set(form.changed_data):
            # Every mark moves: recompute from the inception (the update runs when the save commits).
            services.mark_snapshots_stale(obj, obj.inception_date)


class CashMovementForm(forms.ModelForm):
    class Meta:
        model = CashMovement
        fields = ("portfolio", "date", "kind", "amount", "instrument", "notes")
        help_texts = {"amount": "Give it positive; the kind gives the sign (interest keeps its own)."}

    def clean(self):
        data = super().clean()
        self.given_amount = data.get("amount")
        if data.get("kind") and data.get("amount") is not None:
            # Signed before the model's checks (a withdrawal is stored negative), as add_cash does.
            try:
                data["amount"] = services.signed_amount(data["kind"], data["amount"])
            except JournalError as exc:
                self.add_error("amount" if exc.field == "amount" else None, exc.problem)
        return data


@admin.register(CashMovement)
class CashMovementAdmin(PlainDecimalsAdmin):
    """Added through the journal (sign by kind, snapshots marked stale); a wrong one is voided, not edited."""

    form = CashMovementForm
    formfield_overrides = PLAIN_DECIMALS
    list_display = ("portfolio", "date", "kind", "amount", "instrument", "recorded_by", "voided_at")
    list_filter = ("kind", "portfolio")
    search_fields = ("notes", "=instrument__symbol")
    date_hierarchy = "date"
    autocomplete_fields = ("portfolio", "instrument")
    list_select_related = ("portfolio", "instrument", "recorded_by")
    readonly_fields = ("created_at", "recorded_by", "voided_at", "voided_by", "void_reason")
    actions = ["void_movements"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            saved = services.add_cash(portfolio=data["portfolio"], user=request.user, date=data["date"],
                                      kind=data["kind"], amount=form.given_amount, instrument=data.get("instrument"),
                                      notes=data.get("notes", ""))
        except JournalError as exc:
            raise ValidationError(str(exc)) from exc
        obj.pk = saved.pk

    @admin.action(description="Void the selected movements (kept, no longer counted)")
    def void_movements(self, request, queryset):
        done = 0
        for movement in queryset.filter(voided_at__isnull=True):
            services.void_cash(movement, user=request.user, reason="voided in the admin")
            done += 1
        self.message_user(request, f"{done} movement{'s' if done != 1 else ''} voided.", messages.SUCCESS)


class TradeVersionInline(admin.TabularInline):
    model = TradeVersion
    fields = ("version", "knowledge_time", "superseded_at", "change_kind", "changed_by", "change_reason", "status",
              "quantity", "entry_price", "entry_date", "exit_price", "exit_date", "fees", "pnl")
    readonly_fields = fields
    ordering = ("version",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")


def _exit_lines(trade):
    exits = TradeExit.objects.filter(version__trade=trade, version__superseded_at__isnull=True).order_by("date", "id")
    return "\n".join(f"{e.date} {plain(e.quantity)} {plain(e.price)} {plain(e.commission)}" for e in exits)


CORRECTABLE = ("direction", "quantity", "entry_date", "entry_price", "entry_commission", "strategy_name",
               "signal_ref", "notes")


class TradeCorrectionForm(forms.ModelForm):
    """The fields an admin may correct, the exits as lines, and the reason the history keeps."""

    exits = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="One exit per line: date quantity price commission, e.g. 2024-03-08 40 187.44 1.00")
    change_reason = forms.CharField(max_length=200, help_text="Why: shown in the trade's history with your name")

    class Meta:
        model = Trade
        fields = CORRECTABLE

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["exits"].initial = _exit_lines(self.instance)

    def clean_exits(self):
        legs = []
        for number, line in enumerate(self.cleaned_data["exits"].splitlines(), start=1):
            parts = line.replace(",", " ").split()
            if not parts:
                continue
            if len(parts) not in (3, 4):
                raise ValidationError(f"line {number}: expected date quantity price [commission], got {line!r}")
            try:
                day = parse_date(parts[0])
                quantity, price = Decimal(parts[1]), Decimal(parts[2])
                commission = Decimal(parts[3]) if len(parts) == 4 else Decimal(0)
            except (ValueError, InvalidOperation):
                raise ValidationError(f"line {number}: {line!r} is not date quantity price [commission]") from None
            legs.append({"date": day, "quantity": quantity, "price": price, "commission": commission})
        return legs

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        changes = {name: data[name] for name in CORRECTABLE} | {"exits": data["exits"]}
        try:
            services.revised_state(self.instance, changes)  # the journal's own checks; nothing written
        except JournalError as exc:
            for name, problem in exc.problems:
                field = name if name in self.fields else "exits" if name.startswith("exit") else None
                self.add_error(field, f"{name}: {problem}" if field in (None, "exits") else problem)
        self.journal_changes = changes
        return data


@admin.register(Trade)
class TradeAdmin(PlainDecimalsAdmin):
    """The journal as currently known. Saving a correction records a new version; nothing is overwritten."""

    form = TradeCorrectionForm
    formfield_overrides = PLAIN_DECIMALS
    list_display = ("trade_id", "portfolio", "symbol", "direction", "quantity", "entry_price", "entry_date",
                    "exit_price", "exit_date", "fees", "pnl", "status", "strategy_name")
    list_filter = ("status", "direction", "portfolio", "strategy_name")
    search_fields = ("trade_id", "symbol", "notes")
    date_hierarchy = "entry_date"
    list_select_related = ("portfolio",)
    readonly_fields = ("trade_id", "portfolio", "symbol", "instrument", "status", "closed_quantity", "exit_price",
                       "exit_date", "fees", "pnl", "pnl_pct", "pnl_base", "pnl_base_missing", "knowledge_time")
    fieldsets = (
        ("The trade", {"fields": ("trade_id", "portfolio", "symbol", "instrument", "status", "knowledge_time")}),
        ("Correct", {"fields": (*CORRECTABLE, "exits", "change_reason"),
                     "description": "Saving records a new version (a correction, with your name and the reason); "
                                    "the history keeps every earlier one."}),
        ("Derived", {"fields": ("closed_quantity", "exit_price", "exit_date", "fees", "pnl", "pnl_pct", "pnl_base",
                                "pnl_base_missing")}),
    )
    inlines = (TradeVersionInline,)
    actions = ["cancel_trades"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status == "cancelled":
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        services.revise_trade(obj, user=request.user, changes=form.journal_changes, kind=ChangeKind.CORRECTED,
                              reason=form.cleaned_data["change_reason"])

    @admin.action(description="Cancel the selected trades (a new version each; history kept)")
    def cancel_trades(self, request, queryset):
        done = 0
        for trade in queryset.exclude(status="cancelled"):
            services.cancel_trade(trade, user=request.user, reason="cancelled in the admin")
            done += 1
        self.message_user(request, f"{done} trade{'s' if done != 1 else ''} cancelled.", messages.SUCCESS)


class TradeExitInline(admin.TabularInline):
    model = TradeExit
    fields = ("date", "quantity", "price", "commission")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TradeVersion)
class TradeVersionAdmin(ReadOnlyAdmin):
    list_display = ("trade", "version", "knowledge_time", "superseded_at", "change_kind", "changed_by", "status",
                    "quantity", "entry_price", "exit_price", "change_reason")
    list_filter = ("status", "change_kind")
    search_fields = ("trade__trade_id", "symbol", "change_reason")
    date_hierarchy = "knowledge_time"
    list_select_related = ("trade", "changed_by")
    inlines = (TradeExitInline,)


@admin.register(TradeExit)
class TradeExitAdmin(ReadOnlyAdmin):
    list_display = ("version", "date", "quantity", "price", "commission")
    search_fields = ("version__trade__trade_id",)
    list_select_related = ("version__trade",)


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(ReadOnlyAdmin):
    """Computed by `snapshot`; to fix one, fix its inputs and run `snapshot --since` again."""

    list_display = ("portfolio", "date", "total_value", "cash", "invested", "flows", "daily_return",
                    "cumulative_return", "volatility_21d", "sharpe_21d", "unvalued_reason", "computed_at")
    list_filter = ("portfolio",)
    date_hierarchy = "date"
    list_select_related = ("portfolio",)


@admin.register(TradeImport)
class TradeImportAdmin(admin.ModelAdmin):
    """The trade files applied to each portfolio (read-only: a record of what happened)."""

    list_display = ("imported_at", "portfolio", "name", "rows", "imported_by", "sha256")
    list_filter = ("portfolio",)
    search_fields = ("name", "sha256", "portfolio__name")
    list_select_related = ("portfolio", "imported_by")
    date_hierarchy = "imported_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
