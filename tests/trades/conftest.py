"""Journal fixtures: a fresh panel folder per test, sessions, price series and alice's books.

Prices here are test inputs chosen so every expected value can be computed by hand; none of them is
shown to a user as market data.
"""
import datetime as dt
from decimal import Decimal

import pytest

from marketdata import calendars


@pytest.fixture(autouse=True)
def local_panels(settings, tmp_path):
    """A fresh Parquet panel folder per test (snapshots read prices through the panels)."""
    config = settings.STORAGES["marketdata"]
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {**config.get("OPTIONS", {}), "location": str(tmp_path / "panels")},
    }}
    return tmp_path / "panels"


def sessions(exchange, start, count):
    """`count` sessions of `exchange` from `start` (inclusive), as dates."""
    days = calendars.sessions_between(exchange, start, start + dt.timedelta(days=count * 2 + 10))
    return days[:count]


@pytest.fixture
def series(make_bars):
    """series('AAPL', 'XNYS', {date: close, ...}) or a list of (date, close): bars whose OHLC is the close."""
    def make(symbol, exchange, closes, **kwargs):
        items = closes.items() if isinstance(closes, dict) else closes
        return make_bars(symbol, exchange, [(d, c, c, c, c, 1_000) for d, c in items], **kwargs)

    return make


@pytest.fixture
def usd_book(alice):
    """Alice's USD portfolio: 10,000.00 starting cash from Tue 2 Jan 2024."""
    from trades.services import create_portfolio

    return create_portfolio(owner=alice, name="Alice US", base_currency="USD", starting_cash=Decimal("10000"),
                            inception_date=dt.date(2024, 1, 2))


@pytest.fixture
def aud_book(alice):
    """Alice's AUD portfolio: 10,000.00 starting cash from Tue 2 Jan 2024."""
    from trades.services import create_portfolio

    return create_portfolio(owner=alice, name="Alice AU", base_currency="AUD", starting_cash=Decimal("10000"),
                            inception_date=dt.date(2024, 1, 2))


@pytest.fixture
def bob_book(bob):
    from trades.services import create_portfolio

    return create_portfolio(owner=bob, name="Bob US", base_currency="USD", starting_cash=Decimal("5000"),
                            inception_date=dt.date(2024, 1, 2))


API = "/api/v1"


def bearer(client, raw):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    return client


@pytest.fixture
def api(client, alice_write):
    """A script of alice's with a read-write token."""
    return bearer(client, alice_write)


@pytest.fixture
def reader(alice_read):
    from django.test import Client

    return bearer(Client(), alice_read)


@pytest.fixture
def carol_api(carol):
    from django.test import Client

    from tests.conftest import _token

    return bearer(Client(), _token(carol, "read_write"))


@pytest.fixture
def bob_api(bob):
    from django.test import Client

    from tests.conftest import _token

    return bearer(Client(), _token(bob, "read_write"))


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed():` runs the on-commit work (the snapshot update) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def post(client, path, body):
    return client.post(f"{API}{path}", body, content_type="application/json")


def patch(client, path, body):
    return client.patch(f"{API}{path}", body, content_type="application/json")


def put(client, path, body):
    return client.put(f"{API}{path}", body, content_type="application/json")


def staff_schema(staff_user):
    """The published OpenAPI components, read by a staff user (who may always read the API docs)."""
    from django.test import Client

    staff = Client()
    staff.force_login(staff_user)
    return staff.get(f"{API}/openapi.json").json()["components"]["schemas"]
