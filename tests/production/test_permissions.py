"""Who may do what: every URL pattern and every API operation, for every persona, against one table.

The walk is discovered, not listed: every named pattern of the URLconf (pages, the admin, the API docs)
and every operation of the OpenAPI schema. A pattern or operation without a row in EXPECTED fails the
test, so an endpoint added later (trades, backtests, scans) is covered the day it is merged: add its row
(and, for a new path parameter, an example in `params`; for a body, one in BODIES).

Personas: anonymous; alice's read-only and read-write tokens (API clients; on pages a token is no
login); alice, a trader; bob, another trader (where alice owns an object, bob gets 404); carol, the admin.

Outcomes: an HTTP status, or
    "login"        302 to a login page (the site's, from LoginRequiredMiddleware, or the admin's)
    "admin_login"  302 to the admin's login page: signed in, but not staff
    "staff_ok"     an admin page for a staff user: any answer below 500 that is not a login redirect
"""
import datetime as dt
import fnmatch

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from marketdata.models import IndexMembership, IngestRun, PriceBar

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "read_token", "write_token", "alice", "bob", "carol")
SIGNED_IN = {"anonymous": "login", "read_token": "login", "write_token": "login", "alice": 200, "bob": 200,
             "carol": 200}
STAFF_PAGE = {**dict.fromkeys(PERSONAS, "login"), "alice": "admin_login", "bob": "admin_login", "carol": 200}
ADMIN = {**dict.fromkeys(PERSONAS, "login"), "alice": "admin_login", "bob": "admin_login", "carol": "staff_ok"}
EVERYONE = dict.fromkeys(PERSONAS, 200)
API_READ = {"anonymous": 401, **dict.fromkeys(PERSONAS[1:], 200)}

# Keys: "page:<namespaced url name>" (fnmatch patterns allowed) and "api:<METHOD> <operationId>".
EXPECTED = {
    # the site
    "page:login": EVERYONE,
    "page:logout": {**SIGNED_IN, "alice": 405, "bob": 405, "carol": 405},  # a POST (a CSRF-checked form)
    "page:healthz": EVERYONE,
    "page:marketdata:*": SIGNED_IN,
    # the API's docs and schema are for staff; the API root sends to them
    "page:api:openapi-json": STAFF_PAGE,
    "page:api:openapi-view": STAFF_PAGE,
    "page:api:api-root": {**dict.fromkeys(PERSONAS, "login"), "alice": 404, "bob": 404, "carol": 404},
    # the admin, every model's every view
    "page:admin:*": ADMIN,
    "page:admin:login": {**EVERYONE, "carol": 302},  # staff already signed in go on to the admin
    # a GET to the admin's logout: non-staff are sent to /admin/ (and so to its login), staff must POST
    "page:admin:logout": {**ADMIN, "alice": 302, "bob": 302, "carol": 405},
    # the API
    "api:GET marketdata_api_list_instruments": API_READ,
    "api:GET marketdata_api_get_prices": API_READ,
    "api:GET marketdata_api_get_latest": API_READ,
    "api:GET marketdata_api_get_universe": API_READ,
    "api:GET marketdata_api_list_runs": API_READ,
    "api:GET marketdata_api_get_run": API_READ,
    # a refresh needs a read-write token or staff; 422 = allowed in, then refused for its Saturday session
    "api:POST marketdata_api_refresh_data": {"anonymous": 401, "read_token": 403, "write_token": 422,
                                             "alice": 403, "bob": 403, "carol": 422},
}

BODIES = {
    "marketdata_api_refresh_data": {"exchange": "XNYS", "session": "2024-03-09"},
}


@pytest.fixture
def world(aapl, alice, bob, carol, alice_read, alice_write):
    """The objects the paths point at, and one client per persona."""
    IndexMembership.objects.create(index_code="SP500", instrument=aapl, start=dt.date(2000, 1, 1))
    run = IngestRun.objects.create(provider="csv")
    bar = PriceBar.objects.filter(instrument=aapl).first()
    clients = {name: Client() for name in PERSONAS}
    clients["read_token"].defaults["HTTP_AUTHORIZATION"] = f"Bearer {alice_read}"
    clients["write_token"].defaults["HTTP_AUTHORIZATION"] = f"Bearer {alice_write}"
    for name, user in (("alice", alice), ("bob", bob), ("carol", carol)):
        clients[name].force_login(user)
    params = {"symbol": "AAPL", "pk": bar.pk, "run_id": run.pk, "code": "SP500", "object_id": aapl.pk,
              "app_label": "marketdata", "content_type_id": 1, "id": alice.pk}
    return clients, params


def _named_patterns(patterns, namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            inner = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _named_patterns(p.url_patterns, inner)
        elif isinstance(p, URLPattern) and p.name:
            yield f"{namespace}{p.name}", p


def _expected(key):
    if key in EXPECTED:
        return EXPECTED[key]
    matches = [pattern for pattern in EXPECTED if "*" in pattern and fnmatch.fnmatchcase(key, pattern)]
    return EXPECTED[max(matches, key=len)] if matches else None


def _page_urls(params):
    """[(key, url)] of every named page pattern; API operations come from the schema instead."""
    from parakeet.api import DOCS_URL_NAMES

    urls = []
    for name, pattern in _named_patterns(get_resolver().url_patterns):
        if name.startswith("api:") and name.split(":", 1)[1] not in DOCS_URL_NAMES:
            continue
        names = list(pattern.pattern.regex.groupindex)
        missing = [n for n in names if n not in params]
        assert not missing, f"no example value for path parameter(s) {missing} of {name}: add them to params"
        urls.append((f"page:{name}", reverse(name, kwargs={n: params[n] for n in names})))
    return urls


def page_urls(carol, instrument):
    """Every page URL the walk visits (for other tests, e.g. CSRF on every form)."""
    bar = PriceBar.objects.filter(instrument=instrument).first()
    run = IngestRun.objects.create(provider="csv")
    params = {"symbol": instrument.symbol, "pk": bar.pk, "run_id": run.pk, "code": "SP500",
              "object_id": instrument.pk, "app_label": "marketdata", "content_type_id": 1, "id": carol.pk}
    return [url for key, url in _page_urls(params) if not key.startswith("page:admin:")] + ["/admin/"]


def _operations(params):
    from parakeet.api import api

    schema = api.get_openapi_schema()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["name"] in params, (
                        f"no example value for path parameter {parameter['name']!r} of {operation['operationId']}")
                    url = url.replace("{" + parameter["name"] + "}", str(params[parameter["name"]]))
            yield f"api:{method.upper()} {operation['operationId']}", method, url, BODIES.get(operation["operationId"])


def _outcome(response):
    location = response.get("Location", "") if response.status_code in (301, 302) else ""
    if location.startswith("/accounts/login/"):
        return "login"
    if location.startswith("/admin/login/"):
        return "admin_login"
    return response.status_code


def _matches(expected, response):
    outcome = _outcome(response)
    if expected == "staff_ok":
        return outcome not in ("login", "admin_login") and response.status_code < 500
    if expected == "login":
        return outcome in ("login", "admin_login")
    return outcome == expected


def test_every_page_and_operation_answers_each_persona_as_the_table_says(world):
    clients, params = world
    checks = [(key, "get", url, None) for key, url in _page_urls(params)] + list(_operations(params))
    undeclared = sorted({key for key, *_ in checks if _expected(key) is None})
    assert not undeclared, f"no expectation declared in EXPECTED for: {undeclared}"
    wrong = []
    for key, method, url, body in checks:
        expected = _expected(key)
        for persona in PERSONAS:
            client = clients[persona]
            if body is None:
                response = getattr(client, method)(url)
            else:
                response = getattr(client, method)(url, body, content_type="application/json")
            if not _matches(expected[persona], response):
                wrong.append(f"{key} {url} as {persona}: expected {expected[persona]}, got {_outcome(response)}")
    assert not wrong, "\n".join(wrong)
    assert len(checks) > 60  # the admin alone has dozens; the walk really walked


def test_every_table_row_still_matches_something(world):
    """A row for an endpoint that no longer exists is a stale promise: remove it."""
    _, params = world
    keys = [key for key, _ in _page_urls(params)] + [key for key, *_ in _operations(params)]
    for row in EXPECTED:
        assert any(fnmatch.fnmatchcase(key, row) for key in keys), f"EXPECTED row {row!r} matches no endpoint"


def test_a_trader_cannot_review_bars_but_the_admin_can(world):
    clients, params = world
    url = reverse("marketdata:bar_review", kwargs={"pk": params["pk"]})
    for persona in ("alice", "bob"):
        assert clients[persona].post(url, {"action": "accept", "reason": "ok"}).status_code == 403
    assert clients["anonymous"].post(url, {"action": "accept"}).status_code == 302
    assert clients["carol"].post(url, {"action": "accept", "reason": "checked"}).status_code == 302
