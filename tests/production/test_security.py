"""Lock-down: check --deploy, token rate limit, login throttling, CSRF on every form, upload limits."""
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from parakeet.uploads import UploadError, read_csv_upload

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db
INSTRUMENTS = "/api/v1/data/instruments"


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


# --- manage.py check --deploy ---------------------------------------------------------------------------

def test_check_deploy_is_clean_with_the_production_settings():
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "parakeet.settings.prod",
           "SECRET_KEY": "Zx9-" + "q7Lm2Pw8Rt4Vn6Bc1Hd3Jf5Kg0" * 3,
           "DATABASE_URL": "postgres://desk:pw@ep-x.ap-southeast-2.aws.neon.tech/desk?sslmode=require",
           "ALLOWED_HOSTS": "desk.example.com"}
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout


def test_production_refuses_a_database_without_tls(settings_from):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="sslmode"):
        settings_from("prod", SECRET_KEY="k" * 60, DATABASE_URL="postgres://desk:pw@ep-x.neon.tech/desk")
    with pytest.raises(ImproperlyConfigured, match="PostgreSQL"):
        settings_from("prod", SECRET_KEY="k" * 60)  # the SQLite default has no place on Lambda
    s = settings_from("prod", SECRET_KEY="k" * 60, DATABASE_URL="postgres://postgres@127.0.0.1:5432/desk")
    assert s["DATABASES"]["default"]["HOST"] == "127.0.0.1"  # loopback (the load test) needs no TLS


# --- API token rate limit --------------------------------------------------------------------------------

def test_a_token_over_its_rate_gets_429_with_retry_after(client, alice_read, alice_write, settings):
    settings.API_TOKEN_RATE = (3, 60)
    # 10:00:45 inside the minute window that started at 10:00:00: 15 s left.
    with time_machine.travel("2024-03-08 10:00:45+00:00", tick=False):
        assert [client.get(INSTRUMENTS, **bearer(alice_read)).status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get(INSTRUMENTS, **bearer(alice_read))
        assert refused.status_code == 429
        assert refused["Retry-After"] == "15"
        assert refused.json()["detail"] == (f"rate limit of 3 requests per 60 s reached for token "
                                            f"'{alice_read[:10]}'; retry after 15 s")
        # The limit is per token: alice's other token is not affected.
        assert client.get(INSTRUMENTS, **bearer(alice_write)).status_code == 200
    with time_machine.travel("2024-03-08 10:01:00+00:00", tick=False):
        assert client.get(INSTRUMENTS, **bearer(alice_read)).status_code == 200  # a new window


def test_session_requests_are_not_counted_against_a_token_rate(alice_client, settings):
    settings.API_TOKEN_RATE = (1, 60)
    assert [alice_client.get(INSTRUMENTS).status_code for _ in range(3)] == [200, 200, 200]


def test_the_rate_is_read_from_the_environment(settings_from):
    from django.core.exceptions import ImproperlyConfigured

    assert settings_from()["API_TOKEN_RATE"] == (600, 60)
    assert settings_from(PARAKEET_API_TOKEN_RATE="120/hour")["API_TOKEN_RATE"] == (120, 3600)
    with pytest.raises(ImproperlyConfigured, match="PARAKEET_API_TOKEN_RATE"):
        settings_from(PARAKEET_API_TOKEN_RATE="lots")


# --- login throttling ------------------------------------------------------------------------------------

def _login(client, username, password, url="/accounts/login/"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR="203.0.113.7")


def test_five_failed_logins_lock_the_username_from_that_address(client, alice, settings):
    settings.LOGIN_FAILURE_LIMIT, settings.LOGIN_LOCKOUT_SECONDS = 5, 900
    with time_machine.travel("2024-03-08 10:05:00+00:00", tick=False):
        for _ in range(5):
            assert _login(client, "alice", "wrong").status_code == 200  # the form again, "wrong password"
        locked = _login(client, "alice", "alice-Pass-1")  # even the right password, while locked
        assert locked.status_code == 429
        assert locked["Retry-After"] == "600"  # the 15-minute window 10:00-10:15 ends in 600 s
        assert "Too many failed logins" in locked.content.decode()
        assert "_auth_user_id" not in client.session
        # Another address is not locked out of alice's account by this one.
        ok = client.post("/accounts/login/", {"username": "alice", "password": "alice-Pass-1"},
                         REMOTE_ADDR="198.51.100.9")
        assert ok.status_code == 302
    with time_machine.travel("2024-03-08 10:15:01+00:00", tick=False):
        client.logout()
        assert _login(client, "alice", "alice-Pass-1").status_code == 302  # the lockout has passed


def test_the_admin_login_obeys_the_same_lockout(client, carol, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    with time_machine.travel("2024-03-08 10:05:00+00:00", tick=False):
        for _ in range(2):
            _login(client, "carol", "wrong", url="/admin/login/")
        response = _login(client, "carol", "carol-Pass-1", url="/admin/login/")
        assert "Too many failed logins" in response.content.decode()
        assert "_auth_user_id" not in client.session


# --- CSRF on every form ----------------------------------------------------------------------------------

FORM = re.compile(r"<form\b[^>]*>(.*?)</form>", re.S | re.I)


def _post_forms(html):
    return [body for tag, body in ((m.group(0)[:m.group(0).find(">") + 1], m.group(1)) for m in FORM.finditer(html))
            if re.search(r'method="post"', tag, re.I)]


def test_every_post_form_on_every_page_carries_the_csrf_token(client, carol, aapl):
    from tests.production.test_permissions import page_urls

    from marketdata.models import PriceBar

    bar = PriceBar.objects.filter(instrument=aapl).first()
    bar.flags, bar.quarantined = 2, False
    bar.save()
    seen = 0
    for url in ["/accounts/login/", *page_urls(carol, aapl)]:
        client.force_login(carol) if url != "/accounts/login/" else client.logout()
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        for form in _post_forms(response.content.decode()):
            assert 'name="csrfmiddlewaretoken"' in form, f"a POST form on {url} has no CSRF token"
            seen += 1
    assert seen >= 5  # login, logout, the three review forms at least


# --- uploads ---------------------------------------------------------------------------------------------

def upload(content, name="trades.csv"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_a_csv_upload_is_read_with_its_bom_and_utf8_text():
    header, rows = read_csv_upload(upload("\ufeffdate,symbol,note\n2024-03-08,NESN.SW,Nestlé – 105 €\n".encode()))
    assert header == ["date", "symbol", "note"]  # no U+FEFF on the first name
    assert rows == [["2024-03-08", "NESN.SW", "Nestlé – 105 €"]]


@pytest.mark.parametrize("content, name, message", [
    (b"a,b\n" + b"1,2\n" * 10, "trades.csv", "trades.csv: 44 bytes is over the limit of 32 bytes"),
    (b"a,b\n1,2\n", "trades.xlsx", "trades.xlsx: expected a .csv or .txt file"),
    (b"PK\x03\x04\x00\x00", "trades.csv", "trades.csv: not a text file"),
    ("date\n2024\ncafé\n".encode("cp1252"), "trades.csv", "trades.csv: row 3 is not UTF-8 text"),
    (b"", "trades.csv", "trades.csv: the file is empty"),
])
def test_a_bad_upload_is_refused_naming_the_file(content, name, message):
    with pytest.raises(UploadError, match=re.escape(message)):
        read_csv_upload(upload(content, name), max_bytes=32)


def test_an_upload_over_the_row_or_field_limit_is_refused():
    with pytest.raises(UploadError, match="more than 2 rows"):
        read_csv_upload(upload(b"a\n1\n2\n3\n"), max_rows=2)
    with pytest.raises(UploadError, match="row 2 has a field over 10,000 characters"):
        read_csv_upload(upload(b"a\n" + b"x" * 10_001 + b"\n"))


def test_a_request_body_over_the_limit_is_a_400_not_a_500(client, alice_write, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post("/api/v1/data/refresh", data=io.BytesIO(b"{" + b" " * 4096 + b"}").read(),
                           content_type="application/json", **bearer(alice_write))
    assert response.status_code in (400, 413)
