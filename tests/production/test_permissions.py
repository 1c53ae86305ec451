"""Who may do what: every URL pattern and every API operation, for every persona, against one table.

The walk is discovered, not listed: every named pattern of the URLconf (pages, the admin, the API docs)
and every operation of the OpenAPI schema. A pattern or operation without a row in EXPECTED fails the
test, so an endpoint added later (trades, backtests, scans) is covered the day it is merged: add its row
(and, for a new path parameter, an example in `params`; for a body, one in BODIES).

Personas: anonymous; alice's read-only and read-write tokens (API clients; on pages a token is no
login); alice, a trader; bob, another trader (where alice owns an object, bob gets 404); carol, the admin.

What is whose: a portfolio and its trades belong to their owner; a scan, a replay, a backtest and a
sweep to the trader who started it (one started by a command or the daily chain, with no requester, is
the desk's and everyone's); staff see everything. Market data, the strategy catalog, the screens and the
saved screens are the desk's. Every path points at alice's objects, so bob's answers show what he can
reach of hers.

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
from marketdata.panels import refresh_panels
from scanner import services as scans
from scanner.models import ScanHit, ScanRun
from strategies.models import BacktestRun, BacktestSweep
from trades import services as journal

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "read_token", "write_token", "alice", "bob", "carol")
SIGNED_IN = {"anonymous": "login", "read_token": "login", "write_token": "login", "alice": 200, "bob": 200,
             "carol": 200}
STAFF_PAGE = {**dict.fromkeys(PERSONAS, "login"), "alice": "admin_login", "bob": "admin_login", "carol": 200}
ADMIN = {**dict.fromkeys(PERSONAS, "login"), "alice": "admin_login", "bob": "admin_login", "carol": "staff_ok"}
EVERYONE = dict.fromkeys(PERSONAS, 200)
API_READ = {"anonymous": 401, **dict.fromkeys(PERSONAS[1:], 200)}
# Pages of an object alice owns: bob is told it does not exist (404, never 403: no hint that it does).
ALICES_PAGE = {**SIGNED_IN, "bob": 404}
# A POST-only page (a CSRF-checked form's action): a GET is refused before anything is looked up.
POST_ONLY = {**SIGNED_IN, "alice": 405, "bob": 405, "carol": 405}
# API reads of an object alice owns: her tokens and the admin see it; bob gets 404.
ALICES_API_READ = {**API_READ, "bob": 404}
# API writes anyone signed in may make: a read-only token is refused (403) before the body is read.
API_WRITE_202 = {"anonymous": 401, "read_token": 403, **dict.fromkeys(PERSONAS[2:], 202)}
# API writes to alice's object: 403 for the read-only token, 404 for bob.
ALICES_API_WRITE = {"anonymous": 401, "read_token": 403, "write_token": 200, "alice": 200, "bob": 404, "carol": 200}

# Keys: "page:<namespaced url name>" (fnmatch patterns allowed) and "api:<METHOD> <operationId>".
EXPECTED = {
    # the site
    "page:login": EVERYONE,
    "page:logout": {**SIGNED_IN, "alice": 405, "bob": 405, "carol": 405},  # a POST (a CSRF-checked form)
    "page:healthz": EVERYONE,
    "page:marketdata:*": SIGNED_IN,
    # the journal: alice's portfolio and trades; bob has a book of his own, so his forms open too
    "page:trades:*": SIGNED_IN,
    "page:trades:trade_*": ALICES_PAGE,
    "page:trades:trade_list": SIGNED_IN,
    "page:trades:trade_new": SIGNED_IN,
    "page:trades:trade_import": SIGNED_IN,
    "page:trades:portfolio_detail": ALICES_PAGE,
    "page:trades:position_close": ALICES_PAGE,
    # the scanner: alice's run, its hit and her replay are hers; the forms' actions are POST only
    "page:scanner:scanner": SIGNED_IN,
    "page:scanner:replays": SIGNED_IN,
    "page:scanner:run_detail": ALICES_PAGE,
    "page:scanner:hit_detail": ALICES_PAGE,
    "page:scanner:replay_detail": ALICES_PAGE,
    "page:scanner:backtest_scan": POST_ONLY,
    "page:scanner:backtest_replay": POST_ONLY,
    "page:scanner:save_screen": POST_ONLY,
    "page:scanner:delete_screen": POST_ONLY,
    # strategies and backtests: the catalog and the definitions are the desk's; runs and sweeps their owner's
    "page:strategies:*": SIGNED_IN,
    "page:strategies:backtest_detail": ALICES_PAGE,
    "page:strategies:sweep_detail": ALICES_PAGE,
    "page:strategies:start_run": POST_ONLY,
    "page:strategies:start_sweep": POST_ONLY,
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
    # the journal: lists are of the portfolios one can see (bob's: his own)
    "api:GET trades_api_list_trades": API_READ,
    "api:GET trades_api_export_trades": API_READ,
    # bob naming alice's portfolio in the body: 422 "no portfolio named ... that you can see", as for one
    # that does not exist; staff record in any book
    "api:POST trades_api_create_trade": {"anonymous": 401, "read_token": 403, "write_token": 201, "alice": 201,
                                         "bob": 422, "carol": 201},
    "api:GET trades_api_read_trade": ALICES_API_READ,
    "api:PUT trades_api_replace_trade": ALICES_API_WRITE,
    "api:PATCH trades_api_update_trade": ALICES_API_WRITE,
    # the write token cancels it; a second cancel is refused naming why (422), bob still never sees it
    "api:DELETE trades_api_cancel_trade": {**ALICES_API_WRITE, "alice": 422, "carol": 422},
    "api:GET trades_api_trade_history": ALICES_API_READ,
    # ?portfolio=<alice's id>: for bob a query naming a portfolio he cannot see, 422 as for one that is not
    "api:GET trades_api_portfolio_*": {**API_READ, "bob": 422},
    "api:GET trades_api_export_snapshots": {**API_READ, "bob": 422},
    # the scanner: ?run=<alice's run>
    "api:POST scanner_api_create_scan": API_WRITE_202,
    "api:GET scanner_api_get_results": ALICES_API_READ,
    "api:GET scanner_api_list_scan_runs": API_READ,
    "api:GET scanner_api_list_screens": API_READ,
    # saving under the name of alice's screen: she (and staff) replace it; bob is refused naming the name
    "api:POST scanner_api_save_screen": {"anonymous": 401, "read_token": 403, "write_token": 201, "alice": 201,
                                         "bob": 422, "carol": 201},
    "api:POST scanner_api_create_replay": API_WRITE_202,
    "api:GET scanner_api_get_replay": ALICES_API_READ,
    # strategies and backtests
    "api:GET strategies_api_list_strategies": API_READ,
    "api:POST strategies_api_create_backtest": API_WRITE_202,
    "api:GET strategies_api_list_backtests": API_READ,
    "api:GET strategies_api_get_backtest": ALICES_API_READ,
    "api:GET strategies_api_get_performance": API_READ,
    "api:POST strategies_api_create_sweep": API_WRITE_202,
    "api:GET strategies_api_get_sweep": ALICES_API_READ,
}

# AAPL's sessions in the `aapl` fixture: 2024-03-04 .. 2024-03-08.
TRADE = {"symbol": "XNAS:AAPL", "direction": "long", "quantity": "10", "entry_date": "2024-03-05",
         "entry_price": "170.12", "entry_commission": "1"}
BODIES = {
    "marketdata_api_refresh_data": {"exchange": "XNYS", "session": "2024-03-09"},
    "trades_api_create_trade": {**TRADE, "portfolio": "alice book"},
    "trades_api_replace_trade": {**TRADE, "quantity": "12", "reason": "filled 12, not 10"},
    "trades_api_update_trade": {"notes": "breakout over the March high", "reason": "note"},
    "scanner_api_create_scan": {"screen": "momentum_breakout", "universe": "SP500", "as_of": "2024-03-08"},
    "scanner_api_save_screen": {"name": "alice-breakouts", "screen": "momentum_breakout", "universe": "SP500",
                                "params": {"top_percent": 2}},
    "scanner_api_create_replay": {"screen": "momentum_breakout", "universe": "SP500", "start": "2024-03-04",
                                  "end": "2024-03-08"},
    "strategies_api_create_backtest": {"strategy": "buy_and_hold", "universe": "AAPL", "start": "2024-03-04",
                                       "end": "2024-03-08"},
    "strategies_api_create_sweep": {"strategy": "moving_average", "universe": "AAPL", "start": "2024-03-04",
                                    "end": "2024-03-08", "grid": {"fast": [2, 3], "slow": [5]}},
}

# Query strings, formatted with the params: which position to close; which of alice's objects to read.
QUERIES = {
    "page:trades:position_close": "instrument=XNAS:AAPL&direction=long",
    "api:GET trades_api_portfolio_summary": "portfolio={portfolio}",
    "api:GET trades_api_portfolio_snapshots": "portfolio={portfolio}",
    "api:GET trades_api_export_snapshots": "portfolio={portfolio}",
    "api:GET scanner_api_get_results": "run={scan_run}",
}


def owned_objects(owner, instrument):
    """A portfolio with two open trades, a finished scan with one hit, a replay, a saved screen, a backtest
    and a sweep, all `owner`'s; returns the path parameters that point at them.

    Path parameter names repeat across apps (`pk`, `run_id`), so a value may be given for one URL name or
    operation id: "<name>.<parameter>".
    """
    IndexMembership.objects.get_or_create(index_code="SP500", instrument=instrument, start=dt.date(2000, 1, 1))
    book = journal.create_portfolio(owner=owner, name=f"{owner.username} book", base_currency="USD",
                                    starting_cash=100_000, inception_date=dt.date(2024, 3, 4))
    trades = [journal.record_trade(portfolio=book, user=owner, symbol=instrument.key, quantity=10,
                                   entry_date=dt.date(2024, 3, 5), entry_price=170.12) for _ in range(2)]
    # A finished scan as run_scan leaves it (running one needs a year of bars per name).
    scan = ScanRun.objects.create(screen="momentum_breakout", universe="SP500", as_of=dt.date(2024, 3, 8),
                                  params={}, status="success", requested_by=owner, hit_count=1)
    hit = ScanHit.objects.create(run=scan, instrument=instrument, rank=1, score=97.5, metrics={"close": 170.73},
                                 sparkline=[175.10, 170.12, 169.12, 169.00, 170.73])
    replay = scans.start_replay(screen="momentum_breakout", universe="SP500", start=dt.date(2024, 3, 4),
                                end=dt.date(2024, 3, 8), requested_by=owner)
    saved = scans.save_screen(name=f"{owner.username}-breakouts", screen="momentum_breakout", universe="SP500",
                              user=owner)
    # Queued, as start_backtest and start_sweep record them before a worker picks them up.
    backtest = BacktestRun.objects.create(strategy="buy_and_hold", universe=instrument.symbol,
                                          start=dt.date(2024, 3, 4), end=dt.date(2024, 3, 8), requested_by=owner,
                                          params={"strategy": {}, "engine": {}})
    sweep = BacktestSweep.objects.create(strategy="moving_average", universe=instrument.symbol,
                                         start=dt.date(2024, 3, 4), end=dt.date(2024, 3, 8), combinations=2, chunks=1,
                                         requested_by=owner, params={"base": {}, "grid": {"fast": [2, 3], "slow": [5]}})
    return {
        "portfolio": book.pk, "trade_id": trades[0].pk, "trades_api_cancel_trade.trade_id": trades[1].pk,
        "trades:trade_detail.pk": trades[0].pk, "trades:trade_edit.pk": trades[0].pk,
        "trades:trade_close.pk": trades[0].pk, "trades:trade_cancel.pk": trades[1].pk,
        "trades:portfolio_detail.pk": book.pk, "trades:position_close.pk": book.pk,
        "scan_run": scan.pk, "scanner:run_detail.run_id": scan.pk, "scanner:backtest_scan.run_id": scan.pk,
        "hit_id": hit.pk, "replay_id": replay.pk, "name": saved.name,
        "strategies:backtest_detail.pk": backtest.pk, "strategies_api_get_backtest.run_id": backtest.pk,
        "strategies:sweep_detail.pk": sweep.pk, "sweep_id": sweep.pk,
    }


@pytest.fixture
def world(aapl, alice, bob, carol, alice_read, alice_write, settings, tmp_path):
    """The objects the paths point at (alice's), bob's own book, and one client per persona."""
    # Panels of the five AAPL sessions in a folder of this test's: backtest and sweep requests check them.
    settings.STORAGES = {**settings.STORAGES, "marketdata": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {**settings.STORAGES["marketdata"].get("OPTIONS", {}), "location": str(tmp_path / "marketdata")},
    }}
    refresh_panels()
    owned = owned_objects(alice, aapl)
    journal.create_portfolio(owner=bob, name="bob book", base_currency="USD", starting_cash=50_000,
                             inception_date=dt.date(2024, 3, 4))
    run = IngestRun.objects.create(provider="csv")
    bar = PriceBar.objects.filter(instrument=aapl).first()
    clients = {name: Client() for name in PERSONAS}
    clients["read_token"].defaults["HTTP_AUTHORIZATION"] = f"Bearer {alice_read}"
    clients["write_token"].defaults["HTTP_AUTHORIZATION"] = f"Bearer {alice_write}"
    for name, user in (("alice", alice), ("bob", bob), ("carol", carol)):
        clients[name].force_login(user)
    params = {"symbol": "AAPL", "pk": bar.pk, "run_id": run.pk, "code": "SP500", "object_id": aapl.pk,
              "app_label": "marketdata", "content_type_id": 1, "id": alice.pk, **owned}
    return clients, params


def _param(params, where, name):
    """The example value of path parameter `name` at `where` (a URL name or an operation id)."""
    return params.get(f"{where}.{name}", params.get(name))


def _with_query(key, url, params):
    query = QUERIES.get(key)
    return f"{url}?{query.format(**params)}" if query else url


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
        missing = [n for n in names if _param(params, name, n) is None]
        assert not missing, f"no example value for path parameter(s) {missing} of {name}: add them to params"
        url = reverse(name, kwargs={n: _param(params, name, n) for n in names})
        urls.append((f"page:{name}", _with_query(f"page:{name}", url, params)))
    return urls


def page_urls(carol, instrument):
    """Every page URL the walk visits, its objects carol's (for other tests, e.g. CSRF on every form)."""
    bar = PriceBar.objects.filter(instrument=instrument).first()
    run = IngestRun.objects.create(provider="csv")
    params = {"symbol": instrument.symbol, "pk": bar.pk, "run_id": run.pk, "code": "SP500",
              "object_id": instrument.pk, "app_label": "marketdata", "content_type_id": 1, "id": carol.pk,
              **owned_objects(carol, instrument)}
    return [url for key, url in _page_urls(params) if not key.startswith("page:admin:")] + ["/admin/"]


def _operations(params):
    from parakeet.api import api

    schema = api.get_openapi_schema()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            url, op = path, operation["operationId"]
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    value = _param(params, op, parameter["name"])
                    assert value is not None, f"no example value for path parameter {parameter['name']!r} of {op}"
                    url = url.replace("{" + parameter["name"] + "}", str(value))
            key = f"api:{method.upper()} {op}"
            yield key, method, _with_query(key, url, params), BODIES.get(op)


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
