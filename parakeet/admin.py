"""Admin for API tokens: issue one per client, see it once, revoke it when the client goes away."""
from django.contrib import admin, messages
from django.utils import timezone

from .models import Alert, ApiToken
from .throttle import ThrottledAuthenticationForm

# The admin's login page says "locked for N minutes" too (the backend refuses either way).
admin.site.login_form = ThrottledAuthenticationForm


class LiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("live", "Live"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "scope", "prefix", "created_at", "last_used_at", "revoked_at", "is_live")
    list_filter = (LiveFilter, "scope")
    search_fields = ("name", "user__username", "prefix")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    date_hierarchy = "created_at"
    actions = ("revoke_tokens",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name", "scope")
        return ("user", "name", "scope", "prefix", "hash_prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # The owner and the secret are fixed at issue; a different client gets a new token.
        return ("user", "prefix", "hash_prefix", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="Live", boolean=True)
    def is_live(self, token):
        return token.is_live

    @admin.display(description="sha256 (start)")
    def hash_prefix(self, token):
        return f"{token.key_hash[:12]}…"

    def save_model(self, request, obj, form, change):
        raw = None if change else obj.issue()
        super().save_model(request, obj, form, change)
        if raw:
            messages.success(
                request,
                f"Token for {obj.user}: {raw} — copy it now. Only its hash is kept; it will not be shown again.",
            )

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request, queryset):
        n = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{n} token(s) revoked.", messages.SUCCESS)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Alerts sent (read-only): which incident, when, to which channels, and what failed."""

    list_display = ("subject", "created_at", "sent_to", "errors")
    search_fields = ("key", "subject")
    date_hierarchy = "created_at"
    readonly_fields = ("key", "subject", "body", "created_at", "sent_to", "errors")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
