"""Admin for the journal and portfolios. Trades are shown, not edited: a change here would skip TradeVersion."""
from django.contrib import admin

from .models import CashMovement, Portfolio, PortfolioSnapshot, Trade, TradeVersion


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that other code writes and history depends on: visible to the admin, never edited here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Portfolio)
class PortfolioAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "base_currency", "starting_cash", "inception_date", "benchmark")
    list_filter = ("base_currency",)
    search_fields = ("name", "owner__username")
    autocomplete_fields = ("owner", "benchmark")
    list_select_related = ("owner", "benchmark")
    readonly_fields = ("created_at",)


@admin.register(CashMovement)
class CashMovementAdmin(admin.ModelAdmin):
    list_display = ("portfolio", "date", "kind", "amount", "instrument")
    list_filter = ("kind", "portfolio")
    search_fields = ("notes", "=instrument__symbol")
    date_hierarchy = "date"
    autocomplete_fields = ("portfolio", "instrument")
    list_select_related = ("portfolio", "instrument")
    readonly_fields = ("created_at",)


class TradeVersionInline(admin.TabularInline):
    model = TradeVersion
    fields = ("version", "knowledge_time", "superseded_at", "status", "quantity", "entry_price",
              "exit_price", "exit_date", "fees", "changed_by", "change_reason")
    readonly_fields = fields
    ordering = ("version",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    """The journal as currently known; entries and corrections go through the journal so history is kept."""

    list_display = ("trade_id", "portfolio", "symbol", "direction", "quantity", "entry_price", "entry_date",
                    "exit_price", "exit_date", "fees", "pnl", "status", "strategy_name")
    list_filter = ("status", "direction", "portfolio", "strategy_name")
    search_fields = ("trade_id", "symbol", "notes")
    date_hierarchy = "entry_date"
    list_select_related = ("portfolio",)
    inlines = (TradeVersionInline,)


@admin.register(TradeVersion)
class TradeVersionAdmin(ReadOnlyAdmin):
    list_display = ("trade", "version", "knowledge_time", "superseded_at", "status", "quantity",
                    "entry_price", "exit_price", "changed_by", "change_reason")
    list_filter = ("status",)
    search_fields = ("trade__trade_id", "symbol", "change_reason")
    date_hierarchy = "knowledge_time"
    list_select_related = ("trade", "changed_by")


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(ReadOnlyAdmin):
    """Computed by `snapshot`; to fix one, fix its inputs and run `snapshot --since` again."""

    list_display = ("portfolio", "date", "total_value", "cash", "invested", "daily_return",
                    "cumulative_return", "volatility_21d", "sharpe_21d", "computed_at")
    list_filter = ("portfolio",)
    date_hierarchy = "date"
    list_select_related = ("portfolio",)
