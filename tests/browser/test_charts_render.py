"""Headless Chromium loads an instrument page from a live server and plotly.js really draws the chart."""
import os
from pathlib import Path

import pytest

from tests.browser.cdp import CHROMIUM, Browser

pytestmark = pytest.mark.browser


@pytest.fixture
def chromium():
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("PARAKEET_REQUIRE_BROWSER"):
        pytest.fail(f"PARAKEET_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); set PARAKEET_REQUIRE_BROWSER=1 to fail instead")


def test_plotly_draws_the_candlestick_chart_on_the_instrument_page(chromium, live_server, client, alice, aapl):
    client.force_login(alice)
    with Browser(chromium) as browser:
        browser.set_cookie(live_server.url, "sessionid", client.cookies["sessionid"].value)
        page = browser.open(f"{live_server.url}/instruments/AAPL/")
        assert page.evaluate("document.title").startswith("AAPL")  # logged in, not the login page
        page.wait_for("document.querySelector('[data-plotly].js-plotly-plot .main-svg') !== null")
        drawn = page.evaluate("""(() => {
            const el = document.querySelector('[data-plotly]');
            return {
                types: el._fullData.map(t => t.type),
                closes: Array.from(el._fullData[0].close),
                candles: el.querySelectorAll('.cartesianlayer .trace.boxes path.box').length,
                volumeBars: el.querySelectorAll('.cartesianlayer .trace.bars .point').length,
            };
        })()""")
    assert drawn["types"] == ["candlestick", "scatter", "scatter", "bar"]
    # The bdata arrays decoded in the browser to the raw closes of the fixture.
    assert drawn["closes"] == [175.10, 170.12, 169.12, 169.00, 170.73]
    assert drawn["candles"] == 5 and drawn["volumeBars"] == 5
