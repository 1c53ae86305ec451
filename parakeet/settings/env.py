"""Strict environment readers: a value that makes no sense stops the boot with ImproperlyConfigured.

environs does the parsing (booleans, lists, database URLs); this module only turns its errors into
Django's and adds the checks that are ours (allowed database schemes, currency of a URL).
"""
import re
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


def mapping_(name, default, *, keys, values):
    """'XNYS=tiingo,XASX=yahoo' -> {'XNYS': 'tiingo', 'XASX': 'yahoo'}, over `default`.

    Keys are upper-cased and must be in `keys`, values lower-cased and in `values`; a malformed or
    repeated pair is refused.
    """
    merged = dict(default)
    seen = set()
    for item in list_(name, []):
        key, sep, value = (part.strip() for part in item.partition("="))
        key, value = key.upper(), value.lower()
        if not sep or not key or not value:
            raise ImproperlyConfigured(f"environment variable {name}: {item!r} is not KEY=VALUE")
        if key not in keys:
            raise ImproperlyConfigured(f"environment variable {name}: unknown key {key!r} (known: {', '.join(keys)})")
        if value not in values:
            raise ImproperlyConfigured(
                f"environment variable {name}: {key}={value!r} is not one of {', '.join(values)}")
        if key in seen:
            raise ImproperlyConfigured(f"environment variable {name}: {key} is given twice")
        seen.add(key)
        merged[key] = value
    return merged


DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def dotted_list_(name, default):
    """A comma-separated list of dotted Python paths ('scanner.tasks.after_daily'); checked for shape only."""
    items = list_(name, default)
    for item in items:
        if not DOTTED_PATH.fullmatch(item):
            raise ImproperlyConfigured(f"environment variable {name}: {item!r} is not a dotted path (module.function)")
    return items


def float_(name, default, *, minimum=None):
    value = _read("float", name, default)
    if value != value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"environment variable {name}: must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"environment variable {name}: must be >= {minimum}, got {value}")
    return value


def url_(name, default):
    """An http(s) base URL without a trailing slash ('https://api.tiingo.com')."""
    value = str_(name, default).strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ImproperlyConfigured(f"environment variable {name}: {value!r} is not an http(s) URL")
    return value
