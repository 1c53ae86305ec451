"""API authentication: a logged-in session (CSRF-checked on writes) or an `Authorization: Bearer` token.

Both return the User, so handlers read `request.auth` (or `request.user`) the same way; a token
request also carries `request.api_token`. No credentials or a bad token: 401. A read-only token
on POST/PUT/PATCH/DELETE: 403.
"""
import datetime as dt

from django.utils import timezone
from ninja.errors import AuthenticationError, AuthorizationError
from ninja.security import HttpBearer, SessionAuth

from .models import ApiToken, hash_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Touching last_used_at on every call would turn each read into a write; a minute is precise enough.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class ReadOnlyToken(AuthorizationError):
    def __init__(self, token, method):
        super().__init__(
            message=f"token {token.prefix!r} has read-only scope; {method} needs a read_write token",
        )


class BearerTokenAuth(HttpBearer):
    """`Authorization: Bearer pk_...`, looked up by its sha256; revoked tokens and inactive users fail."""

    def authenticate(self, request, token):
        token = token.strip()
        found = (
            ApiToken.objects.live().select_related("user").filter(key_hash=hash_token(token)).first()
            if token else None
        )
        if found is None:
            # A client that sent a token means to use it: say it is wrong instead of
            # falling through to the session check and a less useful answer.
            raise AuthenticationError(message="invalid or revoked API token")
        if request.method not in SAFE_METHODS and not found.can_write:
            raise ReadOnlyToken(found, request.method)
        self.touch(found)
        request.api_token = found
        request.user = found.user
        return found.user

    @staticmethod
    def touch(token):
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now


class SessionCsrfAuth(SessionAuth):
    """The Django session of a logged-in, active user; unsafe methods must pass Django's CSRF check."""

    def __call__(self, request):
        # Only a logged-in browser is at risk of CSRF; an anonymous caller gets a plain 401, not a 403.
        if not request.user.is_authenticated:
            return None
        request.api_token = None
        return super().__call__(request)


api_auth = [BearerTokenAuth(), SessionCsrfAuth()]
