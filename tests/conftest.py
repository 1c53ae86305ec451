"""Shared personas and data for the suite.

Personas: alice is a trader (staff-less user), bob another trader, carol the admin (superuser).
Tokens: alice_read / alice_write are raw bearer tokens issued to alice with those scopes.
"""
import datetime as dt
import runpy
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
MARKETDATA = SHARED / "marketdata"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Pages cache the stale-data banner for a minute (marketdata.freshness); no test sees another's."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-Pass-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-Pass-1")


@pytest.fixture
def carol(django_user_model):
    return django_user_model.objects.create_superuser("carol", "carol@example.com", "carol-Pass-1")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def admin_client_(client, carol):
    client.force_login(carol)
    return client


@pytest.fixture
def openapi_spec(carol):
    """The published OpenAPI schema, as staff read it (the docs and schema are staff-only)."""
    from django.test import Client

    staff = Client()
    staff.force_login(carol)
    response = staff.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def _token(user, scope):
    from parakeet.models import ApiToken

    token = ApiToken(user=user, name=f"{user.username} {scope}", scope=scope)
    raw = token.issue()
    token.save()
    return raw


@pytest.fixture
def alice_read(alice):
    return _token(alice, "read")


@pytest.fixture
def alice_write(alice):
    return _token(alice, "read_write")


@pytest.fixture
def make_bars(db):
    """make_bars('AAPL', 'XNAS', [(date, o, h, l, c, v), ...], adj_factor=1.0) -> Instrument."""
    from marketdata.models import CURRENCY_OF, Instrument, PriceBar

    def make(symbol, exchange, rows, *, adj_factor=1.0, name="", asset_type="equity", sector=""):
        inst, _ = Instrument.objects.get_or_create(
            symbol=symbol, exchange=exchange,
            defaults={"currency": CURRENCY_OF.get(exchange, "USD"), "name": name,
                      "asset_type": asset_type, "sector": sector},
        )
        PriceBar.objects.bulk_create(
            PriceBar(instrument=inst, date=d, open=o, high=h, low=lo, close=c, volume=v,
                     adj_factor=adj_factor, source="test")
            for d, o, h, lo, c, v in rows
        )
        return inst

    return make


@pytest.fixture
def aapl(make_bars):
    """AAPL on Nasdaq, five sessions of early March 2024 (real closes, rounded), adj factor 0.5."""
    rows = [
        (dt.date(2024, 3, 4), 176.15, 176.90, 173.79, 175.10, 81_510_100),
        (dt.date(2024, 3, 5), 170.76, 172.04, 169.62, 170.12, 95_132_400),
        (dt.date(2024, 3, 6), 171.06, 171.24, 168.68, 169.12, 68_587_700),
        (dt.date(2024, 3, 7), 169.15, 170.73, 168.49, 169.00, 71_765_100),
        (dt.date(2024, 3, 8), 169.00, 173.70, 168.94, 170.73, 76_114_600),
    ]
    return make_bars("AAPL", "XNAS", rows, adj_factor=0.5, name="Apple Inc.", sector="Information Technology")


ENV_VARS = [
    "DATABASE_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "PARAKEET_S3_BUCKET", "PARAKEET_S3_PREFIX",
    "AWS_S3_ENDPOINT_URL", "CELERY_BROKER_URL", "TIINGO_API_KEY", "DATABASE_CONN_MAX_AGE",
    "PARAKEET_API_PAGE_SIZE", "PARAKEET_DATA_DIR",
]


@pytest.fixture
def settings_from(monkeypatch):
    """Evaluate parakeet.settings.<module> afresh under the given environment; returns its globals."""
    import parakeet.settings

    # Run the module's code afresh (prod imports base: that must be re-read too), then put back
    # the modules the running test process uses.
    monkeypatch.setattr(parakeet.settings, "base", sys.modules["parakeet.settings.base"], raising=False)
    monkeypatch.delitem(sys.modules, "parakeet.settings.base")

    def load(module="base", **env):
        for name in ENV_VARS:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop("parakeet.settings.base", None)
        return runpy.run_module(f"parakeet.settings.{module}")

    return load
