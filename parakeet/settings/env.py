"""Strict environment readers: a value that makes no sense stops the boot with ImproperlyConfigured.

environs does the parsing (booleans, lists, database URLs); this module only turns its errors into
Django's and adds the checks that are ours (allowed database schemes, currency of a URL).
"""
import json
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError

BASE_DIR = Path(__file__).resolve().parent.parent.parent

_env = Env()
_env.read_env(BASE_DIR / ".env", recurse=False)  # optional; the environment wins over the file


# Names a secret in AWS Secrets Manager may carry (PARAKEET_SECRETS_ARN); anything else is a typo.
SECRET_NAMES = ("SECRET_KEY", "DATABASE_URL", "TIINGO_API_KEY", "EMAIL_URL")
_secrets = {}


def load_secrets(name="PARAKEET_SECRETS_ARN"):
    """Read the JSON secret named by `name` from AWS Secrets Manager, once, when the variable is set.

    Its keys (SECRET_NAMES) become values of `str_` for variables the environment does not set; they
    never enter os.environ, so child processes and environment dumps do not see them. boto3 finds the
    region and credentials the usual way (the Lambda role); AWS_ENDPOINT_URL_SECRETS_MANAGER points it
    elsewhere (moto in the tests). Errors name the ARN and the problem, never a value.
    """
    arn = os.environ.get(name, "").strip()
    _secrets.clear()
    if not arn:
        return {}
    import boto3  # only a deployment that keeps its secrets there pays for importing it
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=arn)
    except (BotoCoreError, ClientError) as exc:
        raise ImproperlyConfigured(f"environment variable {name}: cannot read secret {arn!r}: {exc}") from None
    try:
        values = json.loads(answer.get("SecretString") or "")
    except ValueError:
        values = None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ImproperlyConfigured(f"environment variable {name}: secret {arn!r} is not a JSON object of strings")
    unknown = sorted(set(values) - set(SECRET_NAMES))
    if unknown:
        raise ImproperlyConfigured(f"environment variable {name}: secret {arn!r} has unknown keys {unknown} "
                                   f"(known: {', '.join(SECRET_NAMES)})")
    _secrets.update(values)
    return dict.fromkeys(values, "***")


def _read(kind, name, *args, **kwargs):
    try:
        return getattr(_env, kind)(name, *args, **kwargs)
    except EnvError as exc:
        raise ImproperlyConfigured(f"environment variable {name}: {exc}") from exc


def str_(name, default=None):
    if name in _secrets and name not in os.environ:  # the environment wins, as over .env
        return _secrets[name]
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


def cache_(name, default):
    """A CACHES['default'] entry from 'locmem://', 'redis://host:6379/1' (or rediss://), 'db://table' or
    'file:///absolute/folder'."""
    raw = str_(name, default).strip()
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    if scheme == "locmem" and sep:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": rest or "parakeet"}
    if scheme in ("redis", "rediss") and rest:
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": raw}
    if scheme == "db" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rest):
        return {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": rest}
    if scheme == "file" and rest.startswith("/") and len(rest) > 1:
        # One folder shared by every process on the machine (the demo: a command-line ingest clears the
        # server's cached freshness at once, which a per-process locmem cache cannot).
        return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": rest}
    raise ImproperlyConfigured(f"environment variable {name}: {raw!r} is not locmem://, redis://host:port/db, "
                               "db://table_name or file:///absolute/folder")


def email_(name, default):
    """EMAIL_* settings from a URL: 'console://', 'smtp://user:pass@host:587/?tls=True', 'locmem://'."""
    raw = str_(name, default).strip()
    if raw == "locmem://":
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    import dj_email_url

    try:
        config = dj_email_url.parse(raw)
    except Exception as exc:  # dj-email-url raises KeyError/ValueError on unknown schemes and bad ports
        raise ImproperlyConfigured(f"environment variable {name}: not an email URL ({type(exc).__name__})") from None
    return {key: value for key, value in config.items() if value is not None and key != "EMAIL_FILE_PATH"}


def rate_(name, default):
    """'600/min' -> (600, 60): a count per second, minute, hour or day."""
    raw = str_(name, default).strip().lower()
    match = re.fullmatch(r"(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)", raw)
    if not match or int(match[1]) < 1:
        raise ImproperlyConfigured(f"environment variable {name}: {raw!r} is not N/second, N/min, N/hour or N/day "
                                   "with N >= 1")
    seconds = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
               "d": 86400, "day": 86400}[match[2]]
    return int(match[1]), seconds


def choice_(name, default, choices):
    value = str_(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"environment variable {name}: {value!r} is not one of {', '.join(choices)}")
    return value
