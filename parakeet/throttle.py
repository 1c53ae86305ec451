"""Throttles kept in Django's cache: logins (failed attempts lock a username from an address) and API tokens.

Both count in fixed windows with the cache's atomic add + incr (Redis, locmem and the database cache
all provide them), so a check costs one or two cache round trips and no database query.
"""
import math
import threading
import time

from django import forms
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from ninja.throttling import BaseThrottle

# An address alone may fail this many times the per-username limit (one person mistyping on a shared
# office address should not lock out the desk; a password spray from one address still stops).
ADDRESS_FACTOR = 4


def _count(key, window):
    """Add one to `key`'s count in the current fixed window of `window` seconds; returns (count, seconds left)."""
    now = time.time()
    start = math.floor(now / window) * window
    bucket = f"{key}:{int(start)}"
    cache.add(bucket, 0, timeout=window + 1)
    try:
        count = cache.incr(bucket)
    except ValueError:  # expired between add and incr
        cache.add(bucket, 1, timeout=window + 1)
        count = 1
    return count, start + window - now


def _peek(key, window):
    now = time.time()
    start = math.floor(now / window) * window
    return cache.get(f"{key}:{int(start)}", 0), start + window - now


# --- login ----------------------------------------------------------------------------------------------

def _address(request):
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client says. Behind API Gateway Zappa sets
    # REMOTE_ADDR to the caller's source IP; behind another proxy, have it set REMOTE_ADDR.
    return (request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


def _login_keys(request, username):
    address = _address(request)
    return (f"login:user:{(username or '').strip().lower()}:{address}", settings.LOGIN_FAILURE_LIMIT), \
           (f"login:addr:{address}", settings.LOGIN_FAILURE_LIMIT * ADDRESS_FACTOR)


def login_locked(request, username):
    """Seconds until `username` may try again from this request's address, or 0 when it may now."""
    window = settings.LOGIN_LOCKOUT_SECONDS
    wait = 0
    for key, limit in _login_keys(request, username):
        count, left = _peek(key, window)
        if count >= limit:
            wait = max(wait, math.ceil(left))
    return wait


@receiver(user_login_failed)
def _record_failure(sender, credentials, request=None, **kwargs):
    for key, _ in _login_keys(request, credentials.get("username")):
        _count(key, settings.LOGIN_LOCKOUT_SECONDS)


class ThrottledModelBackend(ModelBackend):
    """Django's backend, refusing any password check while the username + address pair is locked out.

    Enforced here, so every login path (the site's form, the admin's, `authenticate()` in code) obeys it.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None and username is not None and login_locked(request, username):
            raise PermissionDenied("too many failed logins")
        return super().authenticate(request, username=username, password=password, **kwargs)


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form, saying plainly that the account is locked for a while instead of "wrong password"."""

    def clean(self):
        wait = login_locked(self.request, self.data.get("username"))
        if wait:
            self.locked_for = wait
            minutes = math.ceil(wait / 60)
            raise forms.ValidationError(
                f"Too many failed logins for this username from your address. Try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}.", code="locked")
        return super().clean()


class LoginView(auth_views.LoginView):
    """The site's login page: a locked-out attempt is answered 429 with Retry-After."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        wait = getattr(form, "locked_for", 0)
        if wait:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response


# --- API tokens -----------------------------------------------------------------------------------------

class TokenRateThrottle(BaseThrottle):
    """settings.API_TOKEN_RATE requests per bearer token and window; session requests are not counted."""

    def __init__(self):
        self._last = threading.local()  # one instance serves every request of its operations, in any thread

    def allow_request(self, request):
        token = getattr(request, "api_token", None)
        if token is None:
            return True
        limit, window = settings.API_TOKEN_RATE
        count, self._last.left = _count(f"api:token:{token.pk}", window)
        return count <= limit

    def wait(self):
        return max(math.ceil(self._last.left), 1)
