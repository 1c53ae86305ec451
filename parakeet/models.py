"""API tokens: one per client (script, notebook), stored hashed, scoped, revocable."""
import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "pk_"


def hash_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def live(self):
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A bearer token a client sends as `Authorization: Bearer pk_...`; only its hash is stored."""

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        READ_WRITE = "read_write", "Read and write"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="Which client uses it, e.g. 'research notebook'")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to recognise it")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def issue(self):
        """Give this token a fresh secret; returns the raw value, which is shown once and never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.key_hash = hash_token(raw)
        self.prefix = raw[:10]
        return raw

    @property
    def can_write(self):
        return self.scope == self.Scope.READ_WRITE

    @property
    def is_live(self):
        return self.revoked_at is None

    def revoke(self):
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class Alert(models.Model):
    """One incident the desk was told about (a failed daily run, an exchange's data gone stale), once.

    `key` names the incident (`daily-failed:<run id>`, `stale:<exchange>:<last bar date>`); its
    uniqueness is what makes an alert go out once however many processes notice the incident.
    """

    key = models.CharField(max_length=200, unique=True)
    subject = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_to = models.JSONField(default=list, blank=True, help_text="Channels that accepted it: email, sns")
    errors = models.JSONField(default=list, blank=True, help_text="Channels that failed, with the reason")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.subject
