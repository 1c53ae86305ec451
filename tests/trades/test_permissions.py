"""Who may see and change what: alice trades, bob must not see her book, carol (staff) corrects; scopes."""
import datetime as dt

import pytest
from django.test import Client

from tests.trades.conftest import API, patch, post, put
from trades import services
from trades.models import Trade, TradeVersion

pytestmark = pytest.mark.django_db
D1, D2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)


@pytest.fixture
def alices_trade(alice, usd_book, series):
    series("ACME", "XNYS", {D1: 50.0, D2: 51.0})
    return services.record_trade(portfolio=usd_book, user=alice, symbol="ACME", quantity=10, entry_price="50",
                                 entry_date=D1)


@pytest.fixture
def bobs_trade(bob, bob_book, alices_trade):
    return services.record_trade(portfolio=bob_book, user=bob, symbol="ACME", quantity=7, entry_price="51",
                                 entry_date=D2)


def test_a_read_only_token_reads_but_cannot_write(reader, alices_trade):
    assert reader.get(f"{API}/trades").status_code == 200
    assert reader.get(f"{API}/portfolio/summary").status_code == 200
    body = {"symbol": "ACME", "quantity": "1", "entry_price": "50", "entry_date": str(D1)}
    for response in (post(reader, "/trades", body),
                     put(reader, f"/trades/{alices_trade.pk}", body),
                     patch(reader, f"/trades/{alices_trade.pk}", {"notes": "x"}),
                     reader.delete(f"{API}/trades/{alices_trade.pk}")):
        assert response.status_code == 403
        assert "read-only scope" in response.json()["detail"]
    assert TradeVersion.objects.filter(trade=alices_trade).count() == 1
    assert Trade.objects.count() == 1


def test_no_credentials_is_a_401(client, alices_trade):
    assert client.get(f"{API}/trades").status_code == 401
    assert client.get(f"{API}/portfolio/summary").status_code == 401


def test_another_traders_book_is_invisible_through_the_api(bob_api, alices_trade, bobs_trade):
    assert [t["id"] for t in bob_api.get(f"{API}/trades").json()["items"]] == [bobs_trade.pk]
    for response in (bob_api.get(f"{API}/trades/{alices_trade.pk}"),
                     bob_api.get(f"{API}/trades/{alices_trade.pk}/history"),
                     patch(bob_api, f"/trades/{alices_trade.pk}", {"notes": "mine now"}),
                     bob_api.delete(f"{API}/trades/{alices_trade.pk}")):
        assert response.status_code == 404
        assert response.json() == {"detail": f"no trade with id {alices_trade.pk}"}
    summary = bob_api.get(f"{API}/portfolio/summary?portfolio=Alice%20US")
    assert summary.status_code == 422 and "no portfolio named 'Alice US' that you can see" in summary.json()["detail"][0]["msg"]
    assert bob_api.get(f"{API}/trades?portfolio=Alice%20US").status_code == 422
    exported = b"".join(bob_api.get(f"{API}/trades/export").streaming_content).decode("utf-8-sig")
    assert "Alice US" not in exported and "Bob US" in exported
    post(bob_api, "/trades", {"portfolio": "Alice US", "symbol": "ACME", "quantity": "1", "entry_price": "50",
                              "entry_date": str(D1)})
    assert Trade.objects.filter(portfolio__name="Alice US").count() == 1


def test_staff_see_every_book(carol_api, alices_trade, bobs_trade):
    assert {t["id"] for t in carol_api.get(f"{API}/trades").json()["items"]} == {alices_trade.pk, bobs_trade.pk}
    assert carol_api.get(f"{API}/portfolio/summary?portfolio=Bob%20US").status_code == 200


def test_another_traders_book_is_invisible_on_the_pages(client, bob, alices_trade, bobs_trade, usd_book):
    client.force_login(bob)
    for url in (f"/trades/{alices_trade.pk}/", f"/trades/{alices_trade.pk}/edit/", f"/trades/{alices_trade.pk}/close/",
                f"/trades/{alices_trade.pk}/cancel/", f"/portfolios/{usd_book.pk}/", f"/?portfolio={usd_book.pk}",
                f"/portfolios/{usd_book.pk}/close-position/?instrument=XNYS:ACME&direction=long"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/trades/{alices_trade.pk}/cancel/", {"reason": "x"}).status_code == 404
    listed = client.get("/trades/").content.decode()
    assert f"/trades/{bobs_trade.pk}/" in listed and f"/trades/{alices_trade.pk}/" not in listed
    assert "Alice US" not in client.get("/portfolios/").content.decode()
    assert Trade.objects.get(pk=alices_trade.pk).status == "open"


def test_a_logged_in_browser_must_send_the_csrf_token_to_write(alice, alices_trade):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    response = patch(browser, f"/trades/{alices_trade.pk}", {"notes": "x"})
    assert response.status_code == 403
    assert TradeVersion.objects.filter(trade=alices_trade).count() == 1
