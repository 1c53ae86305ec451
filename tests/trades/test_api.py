"""The journal API through HTTP: P&L to the cent, 422s naming the field, versions, as_of, pages, the schema."""
import copy
import datetime as dt

import jsonschema
import pytest
import time_machine

from tests.trades.conftest import API, patch, post, put, staff_schema
from trades.models import Trade, TradeVersion

pytestmark = pytest.mark.django_db
UTC = dt.timezone.utc
D1, D2, D3, D4 = dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4), dt.date(2024, 1, 5)


@pytest.fixture
def acme(series):
    """ACME on the NYSE: a few January 2024 sessions (test prices)."""
    return series("ACME", "XNYS", {D1: 50.0, D2: 52.0, D3: 55.0, D4: 54.0, dt.date(2024, 1, 8): 56.0})


def trade(api, **fields):
    body = {"symbol": "ACME", "quantity": "100", "entry_price": "50", "entry_date": str(D1), **fields}
    response = post(api, "/trades", body)
    assert response.status_code == 201, response.json()
    return response.json()


# --- P&L through the API ---------------------------------------------------------------------------

def test_a_long_round_trip_has_its_pnl_after_both_commissions(api, usd_book, acme):
    body = trade(api, entry_commission="10", exit_date=str(D3), exit_price="55", exit_commission="10")
    # 100 x (55 - 50) - 10 - 10 = 480.00; 480 / 5,000 = 9.6%.
    assert (body["status"], body["pnl"], body["pnl_base"], body["fees"]) == ("closed", "480.00", "480.00", "20.00")
    assert body["pnl_pct"] == pytest.approx(0.096)
    assert body["exit_price"] == "55.00" and body["open_quantity"] == "0"


def test_a_short_round_trip_gains_on_the_fall(api, usd_book, acme):
    opened = trade(api, direction="short", quantity="50", entry_price="200", entry_commission="5")
    closed = patch(api, f"/trades/{opened['id']}", {"exit_date": str(D2), "exit_price": "180",
                                                    "exit_commission": "5"}).json()
    # 50 x (200 - 180) - 5 - 5 = 990.00 on 10,000.00: 9.9%.
    assert (closed["status"], closed["pnl"], closed["pnl_pct"]) == ("closed", "990.00", pytest.approx(0.099))


def test_partial_exits_keep_the_trade_open_until_the_last_share(api, usd_book, acme):
    opened = trade(api, quantity="100", entry_price="10", entry_commission="1")
    first = patch(api, f"/trades/{opened['id']}", {"exit_date": str(D2), "exit_price": "12", "exit_quantity": "30",
                                                   "exit_commission": "1"}).json()
    # 30 x (12 - 10) - 1 - 1 x 30/100 = 58.70; 70 still open.
    assert (first["status"], first["open_quantity"], first["pnl"]) == ("open", "70", "58.70")
    last = patch(api, f"/trades/{opened['id']}", {"exit_date": str(D3), "exit_price": "9",
                                                  "exit_commission": "1"}).json()
    # (30 x 12 + 70 x 9) - 1,000 - 3 = -13.00; average exit (360 + 630) / 100 = 9.90; fees 1 + 1 + 1.
    assert (last["status"], last["pnl"], last["exit_price"], last["fees"]) == ("closed", "-13.00", "9.90", "3.00")
    assert [(e["date"], e["quantity"], e["price"]) for e in last["exits"]] == [
        (str(D2), "30", "12.00"), (str(D3), "70", "9.00")]
    assert last["version"] == 3


def test_pnl_is_an_exact_decimal_string_the_schema_announces(api, usd_book, make_bars, openapi_spec):
    # PITFALLS BR-22: 10 x (187.44 - 180.10) = 73.40, exactly, and typed as the OpenAPI schema says.
    make_bars("AAPL", "XNAS", [(dt.date(2024, 3, 7), 180.0, 181.0, 179.5, 180.10, 1),
                               (dt.date(2024, 3, 8), 169.00, 173.70, 168.94, 187.44, 1)])
    body = trade(api, symbol="AAPL", quantity="10", entry_price="180.10", entry_date="2024-03-07",
                 exit_date="2024-03-08", exit_price="187.4400")
    assert body["pnl"] == "73.40" and body["exit_price"] == "187.44"
    spec = openapi_spec
    schema = {**spec["paths"][f"{API}/trades/{{trade_id}}"]["get"]["responses"]["200"]["content"]["application/json"]
              ["schema"], "components": spec["components"]}
    assert spec["components"]["schemas"]["TradeOut"]["properties"]["pnl"]["anyOf"][0] == {
        "type": "string", "format": "decimal", "examples": ["73.40"]}
    fetched = api.get(f"{API}/trades/{body['id']}").json()
    jsonschema.validate(fetched, schema)
    as_number = copy.deepcopy(fetched)
    as_number["pnl"] = 73.40000000000003
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(as_number, schema)


# --- validation: 422 naming the field ------------------------------------------------------------

@pytest.mark.parametrize(("fields", "loc", "message"), [
    ({"quantity": "-5"}, "quantity", "must be more than 0"),
    ({"symbol": "NOPE"}, "symbol", "unknown symbol 'NOPE'"),
    ({"entry_date": "2024-01-06"}, "entry_date", "Sat 2024-01-06 is not an XNYS session (the sessions either side "
                                                 "are 2024-01-05 and 2024-01-08)"),
    ({"exit_date": "2023-12-29", "exit_price": "51"}, "exits[0].date",
     "2023-12-29 is before the entry date 2024-01-02"),
    ({"exits": [{"date": "2024-01-03", "quantity": "150", "price": "52"}]}, "exits[0].quantity",
     "150 is more than the 100 still open"),
    ({"entry_date": "2023-12-29"}, "entry_date", "before the portfolio's inception date 2024-01-02"),
    ({"portfolio": "Bob US"}, "portfolio", "no portfolio named 'Bob US' that you can see"),
])
def test_bad_trades_are_422s_naming_the_field(api, usd_book, bob_book, acme, fields, loc, message):
    body = {"symbol": "ACME", "quantity": "100", "entry_price": "50", "entry_date": str(D1), **fields}
    response = post(api, "/trades", body)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"][-1] == loc and problem["loc"][0] == "body"
    assert message in problem["msg"]
    assert not Trade.objects.exists()


def test_an_exit_larger_than_the_open_quantity_is_refused_by_patch(api, usd_book, acme):
    opened = trade(api)
    response = patch(api, f"/trades/{opened['id']}", {"exit_date": str(D2), "exit_price": "52",
                                                      "exit_quantity": "101"})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"type": "value_error", "loc": ["body", "payload", "exit_quantity"],
                                          "msg": "101 is more than the 100 still open"}]
    assert api.get(f"{API}/trades/{opened['id']}").json()["version"] == 1  # nothing written


def test_a_target_weight_below_one_share_is_refused_with_the_reason(api, alice, series):
    # PITFALLS BR-21 through the journal: 1,000.00 of equity, a price of 120.00.
    from trades.services import create_portfolio

    create_portfolio(owner=alice, name="Small", base_currency="USD", starting_cash="1000", inception_date=D1)
    series("ACME", "XNYS", {D1: 120.0, D2: 120.0})
    response = post(api, "/trades", {"symbol": "ACME", "target_weight": 0.05, "entry_price": "120",
                                     "entry_date": str(D1)})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    # 5% of 1,000.00 = 50.00 -> 50 / 120 = 0.417 shares: no trade, and it says so.
    assert problem["loc"][-1] == "target_weight" and "below one share" in problem["msg"] and "0.417" in problem["msg"]
    body = trade(api, symbol="ACME", quantity=None, target_weight=0.30, entry_price="120")
    assert body["quantity"] == "2"  # 300 / 120 = 2.5 -> 2 whole shares, cost 240.00
    short = trade(api, symbol="ACME", quantity=None, direction="short", target_weight=-0.30, entry_price="120")
    assert (short["direction"], short["quantity"]) == ("short", "2")  # -2.5 -> -2, toward zero
    # A short target without the short direction is refused, never opened as a long.
    response = post(api, "/trades", {"symbol": "ACME", "target_weight": -0.30, "entry_price": "120",
                                     "entry_date": str(D1)})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"][-1] == "target_weight" and "send direction 'short'" in problem["msg"]


def test_a_fractional_quantity_is_kept_exactly(api, usd_book, acme):
    # No silent truncation: 2.5 shares typed is 2.5 shares stored (BR-21's other half).
    assert trade(api, quantity="2.5")["quantity"] == "2.5"


# --- versions, cancel, history, as_of --------------------------------------------------------------

def test_put_replaces_and_delete_cancels_each_as_a_new_version(api, usd_book, acme):
    opened = trade(api, notes="first")
    replaced = put(api, f"/trades/{opened['id']}", {"symbol": "ACME", "quantity": "80", "entry_price": "51",
                                                    "entry_date": str(D2), "notes": "fixed", "reason": "typo"}).json()
    assert (replaced["version"], replaced["quantity"], replaced["entry_price"]) == (2, "80", "51.00")
    response = api.delete(f"{API}/trades/{opened['id']}", {"reason": "never happened"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert Trade.objects.filter(pk=opened["id"]).exists()  # never a hard delete
    history = api.get(f"{API}/trades/{opened['id']}/history").json()
    assert [(v["version"], v["change_kind"], v["changed_by"], v["change_reason"], v["quantity"]) for v in history] == [
        (1, "created", "alice", "", "100"), (2, "edited", "alice", "typo", "80"),
        (3, "cancelled", "alice", "never happened", "80")]
    # Each version is known until the next one was recorded, and the last is current.
    assert history[0]["superseded_at"] == history[1]["knowledge_time"]
    assert history[2]["superseded_at"] is None
    again = api.delete(f"{API}/trades/{opened['id']}")
    assert again.status_code == 422 and again.json()["detail"][0]["loc"][-1] == "status"


def test_as_of_answers_with_what_was_known_then(api, usd_book, acme):
    with time_machine.travel(dt.datetime(2024, 2, 1, 9, 0, tzinfo=UTC), tick=False):
        opened = trade(api, entry_price="50")
    with time_machine.travel(dt.datetime(2024, 2, 10, 9, 0, tzinfo=UTC), tick=False):
        patch(api, f"/trades/{opened['id']}", {"entry_price": "49.5", "reason": "broker's fill was 49.50"})
    with time_machine.travel(dt.datetime(2024, 2, 20, 9, 0, tzinfo=UTC), tick=False):
        trade(api, symbol="ACME", quantity="5")
    listed = lambda as_of: api.get(f"{API}/trades?as_of={as_of}").json()  # noqa: E731
    # Before the first recording: nothing. A date means the end of that day (UTC).
    assert listed("2024-01-31") == {"items": [], "count": 0, "as_of": "2024-01-31T23:59:59.999999+00:00"}
    assert [t["entry_price"] for t in listed("2024-02-05")["items"]] == ["50.00"]
    assert [t["entry_price"] for t in listed("2024-02-10T09:00:00Z")["items"]] == ["49.50"]
    assert [t["entry_price"] for t in listed("2024-02-10T08:59:59Z")["items"]] == ["50.00"]
    assert listed("2024-02-21")["count"] == 2
    single = api.get(f"{API}/trades/{opened['id']}?as_of=2024-02-05T00:00:00%2B10:00").json()
    assert (single["version"], single["entry_price"]) == (1, "50.00")
    # A version's knowledge time, sent back to the microsecond, finds that version.
    history = api.get(f"{API}/trades/{opened['id']}/history").json()
    moment = history[1]["knowledge_time"].replace("+", "%2B")
    assert api.get(f"{API}/trades/{opened['id']}?as_of={moment}").json()["version"] == 2
    missing = api.get(f"{API}/trades/{opened['id']}?as_of=2024-01-15")
    assert missing.status_code == 404 and "not recorded yet" in missing.json()["detail"]


@pytest.mark.parametrize(("as_of", "message"), [
    ("2024-02-10T09:00:00", "has no time zone"),
    ("yesterday", "is not a date"),
])
def test_a_bad_as_of_is_a_422_naming_it(api, usd_book, as_of, message):
    response = api.get(f"{API}/trades?as_of={as_of}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "as_of"] and message in response.json()["detail"][0]["msg"]


def test_a_staff_correction_is_recorded_with_who_made_it(api, carol_api, usd_book, acme):
    opened = trade(api)
    response = patch(carol_api, f"/trades/{opened['id']}", {"entry_commission": "4.95", "reason": "statement"})
    assert response.status_code == 200
    last = api.get(f"{API}/trades/{opened['id']}/history").json()[-1]
    assert (last["change_kind"], last["changed_by"], last["change_reason"]) == ("corrected", "carol", "statement")


# --- lists: pages, filters, sorting ----------------------------------------------------------------

@pytest.fixture
def twenty_five(api, usd_book, acme):
    """25 trades of 1..25 shares, entered over five sessions, every fifth one closed."""
    ids = []
    for n in range(1, 26):
        day = [D1, D2, D3, D4, dt.date(2024, 1, 8)][(n - 1) % 5]
        body = trade(api, quantity=str(n), entry_date=str(day), strategy="momentum" if n % 2 else "breakout")
        if n % 5 == 0:
            patch(api, f"/trades/{body['id']}", {"exit_date": "2024-01-08", "exit_price": "56"})
        ids.append(body["id"])
    return ids


def test_pages_hold_at_most_the_page_size(api, twenty_five):
    # PITFALLS BR-26: 25 rows, 10 a page, sorted by id: page 2 is ids 11..20, page 3 21..25, page 4 empty.
    page = lambda n: api.get(f"{API}/trades?sort=id&page={n}&page_size=10").json()  # noqa: E731
    assert page(2)["count"] == 25
    assert [t["id"] for t in page(2)["items"]] == twenty_five[10:20]
    assert [t["id"] for t in page(3)["items"]] == twenty_five[20:]
    assert page(4)["items"] == []
    for bad in ("page=0", "page=-1", "page_size=501", "limit=0"):
        assert api.get(f"{API}/trades?{bad}").status_code == 422
    # The old clients' limit and offset.
    assert [t["id"] for t in api.get(f"{API}/trades?sort=id&limit=5&offset=3").json()["items"]] == twenty_five[3:8]
    assert len(api.get(f"{API}/trades?limit=100").json()["items"]) == 25
    mixed = api.get(f"{API}/trades?page=2&limit=5")
    assert mixed.status_code == 422 and mixed.json()["detail"][0]["loc"] == ["query", "limit"]


def test_filters_and_sorting(api, twenty_five):
    get = lambda q: api.get(f"{API}/trades?{q}").json()  # noqa: E731
    assert get("status=closed")["count"] == 5
    assert get("status=open&strategy=breakout")["count"] == 10  # even n, minus 10 and 20 closed
    assert get("start=2024-01-04&end=2024-01-05")["count"] == 10
    assert get("symbol=xnys:acme")["count"] == 25 and get("symbol=OTHER")["count"] == 0
    assert [t["quantity"] for t in get("sort=-quantity&limit=3")["items"]] == ["25", "24", "23"]
    newest = get("limit=1")["items"][0]
    assert (newest["entry_date"], newest["quantity"]) == ("2024-01-08", "25")  # -entry_date, then newest id
    bad = api.get(f"{API}/trades?start=2024-02-01&end=2024-01-01")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "start"]
    assert api.get(f"{API}/trades?sort=password").status_code == 422


def test_the_list_costs_the_same_queries_for_ten_or_a_hundred_rows(api, twenty_five, django_assert_max_num_queries):
    # auth token, count, page, current versions + their exits (prefetch): no query per row.
    with django_assert_max_num_queries(6) as captured:
        api.get(f"{API}/trades?limit=100")
    small = len(captured)
    with django_assert_max_num_queries(small):
        api.get(f"{API}/trades?limit=3")


def test_the_openapi_schema_lists_the_old_paths(openapi_spec):
    paths = set(openapi_spec["paths"])
    assert {f"{API}/trades", f"{API}/trades/{{trade_id}}", f"{API}/trades/{{trade_id}}/history",
            f"{API}/portfolio/summary", f"{API}/portfolio/snapshots", f"{API}/trades/export",
            f"{API}/portfolio/snapshots/export"} <= paths
    methods = openapi_spec["paths"][f"{API}/trades/{{trade_id}}"]
    assert {"get", "put", "patch", "delete"} <= set(methods)


def test_a_version_row_is_never_edited_but_for_its_end(api, usd_book, acme):
    opened = trade(api)
    first = TradeVersion.objects.get(trade_id=opened["id"], version=1)
    patch(api, f"/trades/{opened['id']}", {"quantity": "90"})
    again = TradeVersion.objects.get(pk=first.pk)
    assert (again.quantity, again.entry_price, again.knowledge_time) == (first.quantity, first.entry_price,
                                                                        first.knowledge_time)
    assert again.superseded_at is not None


# --- ?portfolio= by id or name ---------------------------------------------------------------------

def test_portfolio_is_an_id_or_a_name(api, alice, usd_book, bob_book, acme):
    from trades.services import create_portfolio

    trade(api, portfolio="Alice US")
    numbered = create_portfolio(owner=alice, name="2024", base_currency="USD", starting_cash="100",
                                inception_date=D1)
    for wanted in (str(usd_book.pk), "Alice US", f" {usd_book.pk} "):
        assert api.get(f"{API}/portfolio/summary?portfolio={wanted}").json()["portfolio"] == "Alice US"
        assert api.get(f"{API}/portfolio/snapshots?portfolio={wanted}").json()["portfolio"] == "Alice US"
        assert api.get(f"{API}/trades?portfolio={wanted}").json()["count"] == 1
    # A number that is no id of hers is a name: the portfolio called "2024".
    assert api.get(f"{API}/portfolio/summary?portfolio=2024").json()["portfolio"] == "2024"
    assert api.get(f"{API}/trades?portfolio={numbered.pk}").json()["count"] == 0
    body = {"symbol": "ACME", "quantity": "1", "entry_price": "50", "entry_date": str(D1)}
    assert post(api, "/trades", {**body, "portfolio": str(numbered.pk)}).json()["portfolio"] == "2024"
    # Bob's id is not one she can see, and no portfolio of hers is named so.
    response = api.get(f"{API}/portfolio/summary?portfolio={bob_book.pk}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == f"no portfolio with id {bob_book.pk} or named '{bob_book.pk}' that you can see"
    assert api.get(f"{API}/trades?portfolio={bob_book.pk}").status_code == 422


# --- every error at once ---------------------------------------------------------------------------

def test_a_422_names_every_bad_field_at_once(api, usd_book, acme):
    body = {"symbol": "ZZZZ", "quantity": "-5", "entry_price": "50", "entry_date": "2024-01-06"}
    response = post(api, "/trades", body)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "value_error", "loc": ["body", "payload", "symbol"], "msg": "unknown symbol 'ZZZZ': no such instrument"},
        {"type": "value_error", "loc": ["body", "payload", "quantity"], "msg": "must be more than 0"},
        # The symbol's exchange is unknown, but no exchange has a session on a Saturday.
        {"type": "value_error", "loc": ["body", "payload", "entry_date"],
         "msg": "Sat 2024-01-06 is a weekend day, not a session"},
    ]
    response = post(api, "/trades", {**body, "symbol": "ACME", "entry_price": "-3", "entry_commission": "-1",
                                     "exits": [{"date": "2023-12-29", "quantity": "0", "price": "-1"}]})
    assert [p["loc"][-1] for p in response.json()["detail"]] == [
        "quantity", "entry_price", "entry_commission", "entry_date", "exits[0].quantity", "exits[0].price",
        "exits[0].date"]
    opened = trade(api)
    response = patch(api, f"/trades/{opened['id']}", {"exit_date": "2024-01-06", "exit_price": "-1",
                                                      "exit_quantity": "101", "exit_commission": "-1"})
    assert [p["loc"][-1] for p in response.json()["detail"]] == [
        "exit_price", "exit_commission", "exit_date", "exit_quantity"]
    response = patch(api, f"/trades/{opened['id']}", {"quantity": "-1", "entry_price": "0", "symbol": "NOPE"})
    assert [p["loc"][-1] for p in response.json()["detail"]] == ["symbol", "quantity", "entry_price"]
    assert Trade.objects.count() == 1 and TradeVersion.objects.count() == 1


def test_the_schema_still_announces_the_bounds(carol):
    spec = staff_schema(carol)
    assert spec["TradeIn"]["properties"]["quantity"]["exclusiveMinimum"] == 0
    assert spec["TradeIn"]["properties"]["entry_commission"]["minimum"] == 0
    assert spec["ExitIn"]["properties"]["price"]["exclusiveMinimum"] == 0
