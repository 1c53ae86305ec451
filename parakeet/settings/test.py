"""Test settings: the embedded default with fast hashing and a throwaway data folder."""
import tempfile

from .base import *  # noqa: F403
from .base import STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if STORAGES["marketdata"]["BACKEND"].endswith("FileSystemStorage"):
    STORAGES["marketdata"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {**STORAGES["marketdata"]["OPTIONS"], "location": tempfile.mkdtemp(prefix="parakeet-test-marketdata-")},
    }
CELERY_TASK_ALWAYS_EAGER = True
# One cache per test process (pytest-xdist workers must not share cached pages or throttles).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "parakeet-test"}}
