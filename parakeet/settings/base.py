"""Settings for every environment, read from the environment (see the table in README.md).

With nothing set this is the embedded default: SQLite file, local files under var/, eager Celery.
"""
import sys

from parakeet import schedules

from . import env
from .env import BASE_DIR

# PARAKEET_SECRETS_ARN: SECRET_KEY, DATABASE_URL, TIINGO_API_KEY (and EMAIL_URL) from AWS Secrets Manager.
env.load_secrets()

SECRET_KEY = env.str_("SECRET_KEY", "insecure-dev-key-change-me-in-production-0123456789")
DEBUG = env.bool_("DEBUG", False)
ALLOWED_HOSTS = env.list_("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"], required=True)
CSRF_TRUSTED_ORIGINS = env.list_("CSRF_TRUSTED_ORIGINS", [])
VAR_DIR = BASE_DIR / "var"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "ninja",
    "parakeet",
    "marketdata",
    "trades",
    "strategies",
    "scanner",
]

MIDDLEWARE = [
    "parakeet.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "parakeet.urls"
WSGI_APPLICATION = "parakeet.wsgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "marketdata.context_processors.stale_data",
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'parakeet.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the dashboard read while an ingest writes; IMMEDIATE avoids upgrade deadlocks. A write
    # (a login's session) waits up to `timeout` seconds for a backfill's transaction (the S&P 500 file
    # holds the lock for about 15 s) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 60,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Lambda keeps a warm container for minutes: reuse the connection, but check it before use
    # (Neon closes idle connections). 0 disables reuse, e.g. behind Neon's pooled endpoint.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int_("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A Neon compute waking from suspend takes a few seconds; a dead host should not eat the Lambda's 30 s.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int_("DATABASE_CONNECT_TIMEOUT", 10,
                                                                                minimum=1)
    if env.bool_("DATABASE_POOLED", "-pooler." in DATABASES["default"].get("HOST", "")):
        # Neon's pooled endpoint is PgBouncer in transaction mode: a server-side cursor or a prepared
        # statement would outlive the transaction on a server connection another client gets next.
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-au"
TIME_ZONE = "UTC"  # timestamps are aware UTC; bar dates are exchange calendar days (see DESIGN.md)
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str_("PARAKEET_STATIC_ROOT", str(BASE_DIR / "staticfiles"))

S3_BUCKET = env.str_("PARAKEET_S3_BUCKET", "")
if S3_BUCKET:
    _marketdata_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "location": env.str_("PARAKEET_S3_PREFIX", "marketdata"),
            "endpoint_url": env.str_("AWS_S3_ENDPOINT_URL", "") or None,
            "region_name": env.str_("AWS_S3_REGION_NAME", "") or None,
            # Panels are rewritten under fixed keys; never invent "name_abc1234.parquet" siblings.
            "file_overwrite": True,
            "object_parameters": {"ServerSideEncryption": env.str_("PARAKEET_S3_ENCRYPTION", "AES256")},
        },
    }
else:
    _marketdata_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Fixed keys again: Django 5.1+ replaces the file instead of saving "2024_abc1234.parquet".
        "OPTIONS": {"location": env.str_("PARAKEET_DATA_DIR", str(VAR_DIR / "marketdata")), "allow_overwrite": True},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(VAR_DIR / "media")}},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    "marketdata": _marketdata_storage,
}

CELERY_BROKER_URL = env.str_("CELERY_BROKER_URL", "")
# No broker configured: run tasks in-process, and let their errors surface where they were called.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str_("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ACKS_LATE = True
# A broker that is down should fail a request in a few seconds (the API answers 503), not hang it.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_TIMEZONE = "UTC"
# On Lambda without a broker, tasks run in an asynchronous invocation of the function itself, not inside the
# web request (API Gateway answers 504 after 29 s): parakeet/celery.py. Off elsewhere (eager in-process).
PARAKEET_TASKS_VIA_LAMBDA = env.bool_("PARAKEET_TASKS_VIA_LAMBDA",
                                      bool(env.str_("AWS_LAMBDA_FUNCTION_NAME", "")) and not CELERY_BROKER_URL)
# The daily chain per exchange, after its close in its own time zone (parakeet/schedules.py says why
# these times). Zappa's scheduled events in zappa_settings.json fire the same chain on Lambda.
CELERY_BEAT_SCHEDULE = schedules.beat_schedule()

# The daily chain (marketdata/daily.py): which provider each exchange's run fetches from, e.g.
# PARAKEET_DAILY_PROVIDERS=XNYS=tiingo,XASX=yahoo; and the callables it runs after the Parquet refresh,
# each called as f(exchange=, session=, run=) (dotted paths, comma separated). By default the saved
# screens marked daily run after each exchange's ingest (scanner.services.scan_daily).
DAILY_PROVIDERS = env.mapping_("PARAKEET_DAILY_PROVIDERS", {"XNYS": "tiingo", "XASX": "yahoo"},
                               keys=("XASX", "XNYS"), values=("tiingo", "yahoo", "stooq"))
DAILY_HOOKS = env.dotted_list_("PARAKEET_DAILY_HOOKS", ["trades.daily.snapshot_portfolios",
                                                       "scanner.services.scan_daily"])
# How long a daily run waits for another run of the same exchange to finish before it gives up.
DAILY_LOCK_WAIT_SECONDS = env.int_("PARAKEET_DAILY_LOCK_WAIT", 900, minimum=1)
# The daily chain leaves out instruments without a bar in this many sessions (stopped trading, never
# loaded): asking for them every day only repeats "no data". `ingest --symbols` still asks for them.
DAILY_DORMANT_SESSIONS = env.int_("PARAKEET_DAILY_DORMANT_SESSIONS", 10, minimum=1)
# How many times the retry sweep re-runs a session whose daily run ended rate limited (PITFALLS BR-14).
DAILY_MAX_RETRIES = env.int_("PARAKEET_DAILY_MAX_RETRIES", 6, minimum=0)
# A run still "running" after this long was killed (Lambda's timeout is 300 s): the data page marks it failed.
INGEST_MAX_SECONDS = env.int_("PARAKEET_INGEST_MAX_SECONDS", 3600, minimum=60)

TIINGO_API_KEY = env.str_("TIINGO_API_KEY", "")
# HTTP providers (marketdata/providers): where each one lives, and how hard we may ask. The rate is
# per provider, in requests per second (0 = unlimited, e.g. a local test server); 429, 5xx and
# timeouts are retried PARAKEET_PROVIDER_RETRIES times, honouring Retry-After.
PROVIDER_URLS = {
    "tiingo": env.url_("PARAKEET_TIINGO_URL", "https://api.tiingo.com"),
    "yahoo": env.url_("PARAKEET_YAHOO_URL", "https://query1.finance.yahoo.com"),
    "stooq": env.url_("PARAKEET_STOOQ_URL", "https://stooq.com"),
}
PROVIDER_RATE = env.float_("PARAKEET_PROVIDER_RATE", 5.0, minimum=0)
PROVIDER_RETRIES = env.int_("PARAKEET_PROVIDER_RETRIES", 3, minimum=0)
PROVIDER_TIMEOUT = env.float_("PARAKEET_PROVIDER_TIMEOUT", 30.0, minimum=0.1)

# Backtests record the code they ran with: this value, or else the git commit of the working tree.
CODE_VERSION = env.str_("PARAKEET_CODE_VERSION", "")

# API: page size of paginated lists, the ceiling a client may ask for.
NINJA_PAGINATION_PER_PAGE = env.int_("PARAKEET_API_PAGE_SIZE", 50, minimum=1)
NINJA_PAGINATION_CLASS = "parakeet.pagination.PageNumberPagination"  # page numbers a database can offset

# The cache: API rate limits, login throttling, alert de-duplication, the stale banner. Per process by
# default; share it (redis:// or db://) when several processes serve one site, or limits are per process.
# A folder under var/ by default: every process of the embedded setup (the server, a command-line ingest)
# shares it, so an ingest clears the server's cached freshness at once. Production and the tests set theirs.
CACHES = {"default": env.cache_("PARAKEET_CACHE_URL", f"file://{VAR_DIR / 'cache'}")}

# Mail (alerts, error reports): EMAIL_URL, e.g. smtp://user:password@smtp.example.com:587/?tls=True.
globals().update(env.email_("EMAIL_URL", "console://"))  # EMAIL_BACKEND, EMAIL_HOST, ..., EMAIL_USE_TLS
DEFAULT_FROM_EMAIL = SERVER_EMAIL = env.str_("PARAKEET_FROM_EMAIL", "parakeet@localhost")
# Who hears about failed ingests and stale data (parakeet/alerts.py): emails, and an SNS topic when set.
ALERT_EMAILS = env.list_("PARAKEET_ALERT_EMAILS", [])
ALERT_SNS_TOPIC = env.str_("PARAKEET_ALERT_SNS_TOPIC", "")
AWS_SNS_REGION_NAME = env.str_("AWS_SNS_REGION_NAME", "") or None

# Request bodies and uploads: Django refuses a bigger body with 400 before anything parses it; an upload
# (parakeet/uploads.py) is refused above PARAKEET_UPLOAD_MAX_BYTES, naming the file and the limit.
UPLOAD_MAX_BYTES = env.int_("PARAKEET_UPLOAD_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 64 * 1024  # the multipart envelope around one file
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 5

# API: requests per bearer token (fixed window in the cache); over it, 429 with Retry-After.
API_TOKEN_RATE = env.rate_("PARAKEET_API_TOKEN_RATE", "600/min")
# Login: after this many failed logins of one username from one address within the lockout, refuse
# that pair (429) until the lockout has passed; an address alone gets four times as many.
LOGIN_FAILURE_LIMIT = env.int_("PARAKEET_LOGIN_FAILURES", 5, minimum=1)
LOGIN_LOCKOUT_SECONDS = env.int_("PARAKEET_LOGIN_LOCKOUT", 900, minimum=1)
AUTHENTICATION_BACKENDS = ["parakeet.throttle.ThrottledModelBackend"]

# Logs: one JSON object a line with the request id (parakeet/observability.py); plain text for people at a
# terminal (a command run by hand), JSON everywhere else (Lambda, gunicorn, cron, CI).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "parakeet.observability.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "parakeet.observability.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"],
                             "formatter": env.choice_("LOG_FORMAT", "plain" if sys.stderr.isatty() else "json",
                                                        ("json", "plain"))}},
    "root": {"handlers": ["console"], "level": env.str_("LOG_LEVEL", "INFO")},
    # urllib3 warns on every retry it makes; the provider adapters report each symbol's outcome instead.
    "loggers": {"urllib3": {"level": "ERROR"}},
}
