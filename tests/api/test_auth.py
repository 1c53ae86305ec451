"""API authentication through the full stack: session or bearer token, scopes, CSRF, last use."""
import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils.crypto import get_random_string

from parakeet.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db

INSTRUMENTS = "/api/v1/data/instruments"
PROBE = "/probe/echo"


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_it_answers_401_json_without_credentials(client):
    response = client.get(INSTRUMENTS)
    assert response.status_code == 401  # not LoginRequiredMiddleware's 302 to the login page
    assert response["Content-Type"].startswith("application/json")
    assert "Authorization: Bearer" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_rejects_an_unknown_token(client, alice_read):
    response = client.get(INSTRUMENTS, **bearer(alice_read + "x"))
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked API token"}


def test_it_rejects_an_empty_bearer_value(client):
    response = client.get(INSTRUMENTS, HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401


def test_it_rejects_a_revoked_token(client, alice_read):
    ApiToken.objects.get(key_hash=hash_token(alice_read)).revoke()
    response = client.get(INSTRUMENTS, **bearer(alice_read))
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid or revoked API token"}


def test_it_rejects_the_token_of_an_inactive_user(client, alice, alice_read):
    alice.is_active = False
    alice.save()
    assert client.get(INSTRUMENTS, **bearer(alice_read)).status_code == 401


def test_it_rejects_the_session_of_an_inactive_user(client, alice):
    client.force_login(alice)
    alice.is_active = False
    alice.save()
    assert client.get(INSTRUMENTS).status_code == 401


def test_a_bad_token_is_not_rescued_by_a_session(alice_client):
    # The client said which credential to use; silently falling back would hide its mistake.
    response = alice_client.get(INSTRUMENTS, **bearer("pk_not-a-token"))
    assert response.status_code == 401


def test_a_read_token_can_get(client, alice_read):
    response = client.get(INSTRUMENTS, **bearer(alice_read))
    assert response.status_code == 200
    assert response.json() == {"items": [], "count": 0}


@pytest.mark.urls("tests.api.probe_urls")
def test_the_handler_sees_the_token_user(client, alice_read):
    response = client.get(PROBE, **bearer(alice_read))
    assert response.json() == {"user": "alice", "via_token": True}


@pytest.mark.urls("tests.api.probe_urls")
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_read_token_gets_403_on_a_write(client, alice_read, method):
    response = getattr(client, method)(PROBE, **bearer(alice_read))
    assert response.status_code == 403
    prefix = alice_read[:10]
    assert response.json() == {
        "detail": f"token '{prefix}' has read-only scope; {method.upper()} needs a read_write token",
    }


@pytest.mark.urls("tests.api.probe_urls")
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_token_can_write(client, alice_write, method):
    response = getattr(client, method)(PROBE, **bearer(alice_write))
    assert response.status_code == 200
    assert response.json() == {"user": "alice", "method": method.upper()}


@pytest.mark.urls("tests.api.probe_urls")
def test_an_anonymous_write_gets_401_not_a_csrf_403():
    response = Client(enforce_csrf_checks=True).post(PROBE)
    assert response.status_code == 401


def test_a_session_can_get(alice_client):
    assert alice_client.get(INSTRUMENTS).status_code == 200


@pytest.mark.urls("tests.api.probe_urls")
def test_a_session_write_without_the_csrf_token_is_refused(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = browser.post(PROBE)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.urls("tests.api.probe_urls")
def test_a_session_write_with_the_csrf_token_is_accepted(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    secret = get_random_string(32)
    browser.cookies[settings.CSRF_COOKIE_NAME] = secret
    response = browser.post(PROBE, HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 200
    assert response.json() == {"user": "alice", "method": "POST"}


@pytest.mark.urls("tests.api.probe_urls")
def test_a_bearer_write_needs_no_csrf_token(alice_write):
    response = Client(enforce_csrf_checks=True).post(PROBE, **bearer(alice_write))
    assert response.status_code == 200


def test_it_records_last_use_at_most_once_a_minute(client, alice_read, django_assert_num_queries):
    token = ApiToken.objects.get(key_hash=hash_token(alice_read))
    assert token.last_used_at is None
    first = dt.datetime(2024, 3, 8, 10, 0, tzinfo=dt.timezone.utc)
    with time_machine.travel(first, tick=False):
        client.get(INSTRUMENTS, **bearer(alice_read))
    token.refresh_from_db()
    assert token.last_used_at == first

    # 30 s later: token lookup + COUNT + page, and no UPDATE.
    with time_machine.travel(first + dt.timedelta(seconds=30), tick=False):
        with django_assert_num_queries(3):
            client.get(INSTRUMENTS, **bearer(alice_read))
    token.refresh_from_db()
    assert token.last_used_at == first

    later = first + dt.timedelta(seconds=61)
    with time_machine.travel(later, tick=False):
        client.get(INSTRUMENTS, **bearer(alice_read))
    token.refresh_from_db()
    assert token.last_used_at == later
