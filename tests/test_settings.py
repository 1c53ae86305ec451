"""The settings read the environment strictly: nonsense stops the boot, and each variable does what the README says."""
import pytest
from django.core.exceptions import ImproperlyConfigured


def test_the_embedded_default_needs_no_configuration(settings_from):
    s = settings_from()
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert str(s["DATABASES"]["default"]["NAME"]).endswith("var/parakeet.sqlite3")
    # A page's write waits for a running backfill's transaction instead of "database is locked".
    assert s["DATABASES"]["default"]["OPTIONS"]["timeout"] >= 30
    assert s["STORAGES"]["marketdata"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert s["STORAGES"]["marketdata"]["OPTIONS"]["allow_overwrite"] is True  # BR-27: fixed keys are replaced
    assert s["CELERY_TASK_ALWAYS_EAGER"] is True
    assert s["DEBUG"] is False
    # Shared by the server and a command-line ingest, so the ingest's cache clearing reaches the pages.
    assert s["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache"
    assert s["CACHES"]["default"]["LOCATION"].endswith("var/cache")


@pytest.mark.parametrize("name,value", [
    ("DEBUG", "maybe"),
    ("DATABASE_URL", "mysql://root@localhost/parakeet"),
    ("DATABASE_URL", "postgres://localhost"),
    ("DATABASE_CONN_MAX_AGE", "-5"),
    ("DATABASE_CONN_MAX_AGE", "soon"),
    ("ALLOWED_HOSTS", ""),
    ("PARAKEET_API_PAGE_SIZE", "0"),
    ("PARAKEET_CACHE_URL", "memcached://127.0.0.1"),
    ("PARAKEET_CACHE_URL", "file://var/cache"),
])
def test_it_refuses_to_boot_on_nonsense(settings_from, name, value):
    env = {name: value}
    if name == "DATABASE_CONN_MAX_AGE":  # only read for PostgreSQL
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/parakeet"
    with pytest.raises(ImproperlyConfigured, match=name):
        settings_from(**env)


def test_it_reads_postgres_with_sslmode_and_connection_reuse(settings_from):
    s = settings_from(DATABASE_URL="postgres://u:p@ep-x.neon.tech:5432/desk?sslmode=require",
                      DATABASE_CONN_MAX_AGE="0")
    db = s["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["HOST"], db["PORT"], db["USER"]) == ("desk", "ep-x.neon.tech", 5432, "u")
    assert db["OPTIONS"]["sslmode"] == "require"
    assert db["CONN_MAX_AGE"] == 0 and db["CONN_HEALTH_CHECKS"] is True


def test_a_broker_turns_eager_celery_off(settings_from):
    s = settings_from(CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert s["CELERY_TASK_ALWAYS_EAGER"] is False
    assert s["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"


def test_lists_and_keys_are_read(settings_from):
    s = settings_from(ALLOWED_HOSTS="desk.example.com, .execute-api.ap-southeast-2.amazonaws.com",
                      TIINGO_API_KEY="tk", DEBUG="true")
    assert s["ALLOWED_HOSTS"] == ["desk.example.com", ".execute-api.ap-southeast-2.amazonaws.com"]
    assert s["TIINGO_API_KEY"] == "tk" and s["DEBUG"] is True


@pytest.mark.parametrize("url, backend, location", [
    ("locmem://", "locmem.LocMemCache", "parakeet"),
    ("redis://127.0.0.1:6379/1", "redis.RedisCache", "redis://127.0.0.1:6379/1"),
    ("db://parakeet_cache", "db.DatabaseCache", "parakeet_cache"),
    ("file:///srv/parakeet/cache", "filebased.FileBasedCache", "/srv/parakeet/cache"),
])
def test_the_cache_url_picks_the_backend(settings_from, url, backend, location):
    cache = settings_from(PARAKEET_CACHE_URL=url)["CACHES"]["default"]
    assert cache == {"BACKEND": f"django.core.cache.backends.{backend}", "LOCATION": location}


def test_a_bucket_moves_marketdata_to_s3(settings_from):
    s = settings_from(PARAKEET_S3_BUCKET="desk-data", AWS_S3_ENDPOINT_URL="http://127.0.0.1:5999")
    storage = s["STORAGES"]["marketdata"]
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert storage["OPTIONS"]["bucket_name"] == "desk-data"
    assert storage["OPTIONS"]["endpoint_url"] == "http://127.0.0.1:5999"
    assert storage["OPTIONS"]["file_overwrite"] is True


def test_production_refuses_the_development_secret(settings_from):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        settings_from("prod")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        settings_from("prod", SECRET_KEY="x" * 60, DEBUG="1")
    s = settings_from("prod", SECRET_KEY="k" * 60, DATABASE_URL="postgres://u:p@ep-x.neon.tech/desk?sslmode=require")
    assert s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"] and s["SECURE_SSL_REDIRECT"]
    # Lambda's code folder is read-only: without a configured cache, each container keeps its own.
    assert s["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    s = settings_from("prod", SECRET_KEY="k" * 60, DATABASE_URL="postgres://u:p@ep-x.neon.tech/desk?sslmode=require",
                      PARAKEET_CACHE_URL="db://parakeet_cache")
    assert s["CACHES"]["default"] == {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                      "LOCATION": "parakeet_cache"}


def test_celery_runs_tasks_in_process_by_default():
    from parakeet.celery import app

    assert app.conf.task_always_eager is True
