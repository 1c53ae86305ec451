"""Strict environment readers: a value that makes no sense stops the boot with ImproperlyConfigured.

environs does the parsing (booleans, lists, database URLs); this module only turns its errors into
Django's and adds the checks that are ours (allowed database schemes, currency of a URL).
"""
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError

BASE_DIR = Path(__file__).resolve().parent.parent.parent

_env = Env()
_env.read_env(BASE_DIR / ".env", recurse=False)  # optional; the environment wins over the file


def _read(kind, name, *args, **kwargs):
    try:
        return getattr(_env, kind)(name, *args, **kwargs)
    except EnvError as exc:
        raise ImproperlyConfigured(f"environment variable {name}: {exc}") from exc


def str_(name, default=None):
    return _read("str", name, default)


def bool_(name, default):
    return _read("bool", name, default)


def int_(name, default, *, minimum=None):
    value = _read("int", name, default)
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"environment variable {name}: must be >= {minimum}, got {value}")
    return value


def list_(name, default, *, required=False):
    items = [item.strip() for item in _read("list", name, default) if item.strip()]
    if required and not items:
        raise ImproperlyConfigured(f"environment variable {name}: must not be empty")
    return items


def database(name, default):
    """A Django DATABASES entry from a URL; only SQLite and PostgreSQL are accepted."""
    raw = str_(name, default)
    scheme = raw.split(":", 1)[0].lower()
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(
            f"environment variable {name}: scheme {scheme!r} is not supported "
            "(use sqlite:///path or postgres://user:pass@host:port/db)"
        )
    import dj_database_url

    try:
        config = dj_database_url.parse(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"environment variable {name}: {exc}") from exc
    if config["ENGINE"].endswith("postgresql") and not config.get("NAME"):
        raise ImproperlyConfigured(f"environment variable {name}: the URL names no database")
    return config
