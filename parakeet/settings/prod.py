"""Production (Lambda + Neon + S3): the base settings, locked down. Secrets must come from outside."""
import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, DEBUG, SECRET_KEY

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production")
if SECRET_KEY.startswith("insecure-") or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set to a long random value in production")
_db = DATABASES["default"]
if not _db["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("DATABASE_URL: production needs PostgreSQL (postgres://...?sslmode=require)")
if (_db.get("HOST") not in ("127.0.0.1", "localhost", "::1", "")
        and _db.get("OPTIONS", {}).get("sslmode") not in ("require", "verify-ca", "verify-full")):
    # Neon accepts only TLS anyway; saying so here beats a connection error at the first request.
    raise ImproperlyConfigured("DATABASE_URL: add ?sslmode=require (or verify-full) for a database off this host")

if not os.environ.get("PARAKEET_CACHE_URL"):
    # Lambda's code folder is read-only: no file cache there. zappa_settings.json sets db://parakeet_cache.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "parakeet"}}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the load balancer probes over plain HTTP inside the VPC
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
