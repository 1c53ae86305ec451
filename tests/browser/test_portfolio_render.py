"""Headless Chromium loads the portfolio overview from a live server and plotly.js draws its three charts."""
import datetime as dt

import pytest

from tests.browser.cdp import Browser
from tests.browser.test_charts_render import chromium  # noqa: F401  (the fixture: skip or fail without Chromium)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_plotly_draws_the_overview_charts(chromium, live_server, client, alice, make_bars):  # noqa: F811
    from trades import services

    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    make_bars("ACME", "XNYS", [(d, c, c, c, c, 1) for d, c in zip(days, [90.0, 80.0, 82.0])])
    book = services.create_portfolio(owner=alice, name="Alice US", base_currency="USD", starting_cash="10000",
                                     inception_date=days[0])
    services.record_trade(portfolio=book, user=alice, symbol="ACME", quantity=100, entry_price="100",
                          entry_date=days[0])  # committed: the snapshot update ran after it
    client.force_login(alice)
    with Browser(chromium) as browser:
        browser.set_cookie(live_server.url, "sessionid", client.cookies["sessionid"].value)
        page = browser.open(f"{live_server.url}/")
        assert page.evaluate("document.title").startswith("Alice US")
        page.wait_for("document.querySelectorAll('[data-plotly].js-plotly-plot .main-svg').length >= 3")
        drawn = page.evaluate("""(() => {
            const byId = id => document.querySelector('[data-plotly="' + id + '"]');
            return {
                equity: Array.from(byId('equity-chart')._fullData[0].y),
                drawdown: Array.from(byId('drawdown-chart')._fullData[0].y),
                riskTraces: byId('risk-chart')._fullData.length,
            };
        })()""")
    # 9,000 / 10,000, 8,000 / 10,000, 8,200 / 10,000 as growth of 100; the drawdown from the 10,000 invested.
    assert drawn["equity"] == pytest.approx([90.0, 80.0, 82.0])
    assert drawn["drawdown"] == pytest.approx([-0.10, -0.20, -0.18])
    assert drawn["riskTraces"] == 2
