"""A trader's journey in a real browser: Playwright for Python driving Debian's Chromium.

Logs in through the login form, opens the overview, finds AAPL in the instrument list, checks that
plotly really draws its chart, and opens the data page; a screenshot of each step is saved under
artifacts/browser/ (CI keeps that folder). Recording a trade, running a scan and a backtest join this
journey when those pages exist.
"""
import os
from pathlib import Path

import pytest

from tests.browser.cdp import CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"


@pytest.fixture
def page(monkeypatch):
    if not Path(CHROMIUM).exists():
        if os.environ.get("PARAKEET_REQUIRE_BROWSER"):
            pytest.fail(f"PARAKEET_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# The data first, then the browser: ORM calls made while Playwright's event loop runs would open a
# connection of their own that the test database's teardown then finds still open.
def test_a_trader_logs_in_and_reads_the_market_data(live_server, alice, aapl, page):
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url  # not signed in yet
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-Pass-1")
    shot(page, "01-login")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("h1").first.inner_text()
    shot(page, "02-overview")

    page.goto(f"{live_server.url}/instruments/?q=AAPL")
    page.click("a[href='/instruments/XNAS:AAPL/'], a[href='/instruments/AAPL/']")
    page.wait_for_selector("[data-plotly].js-plotly-plot .main-svg")
    drawn = page.evaluate("""() => {
        const el = document.querySelector('[data-plotly]');
        return {types: el._fullData.map(t => t.type), closes: Array.from(el._fullData[0].close),
                candles: el.querySelectorAll('.cartesianlayer .trace.boxes path.box').length};
    }""")
    shot(page, "03-instrument-chart")
    assert drawn["types"][0] == "candlestick"
    assert drawn["closes"] == [175.10, 170.12, 169.12, 169.00, 170.73] and drawn["candles"] == 5

    page.goto(f"{live_server.url}/data/")
    assert page.locator("h1").first.inner_text().strip()
    shot(page, "04-data-health")
    assert sorted(p.name for p in ARTIFACTS.glob("0*.png"))[:4] == [
        "01-login.png", "02-overview.png", "03-instrument-chart.png", "04-data-health.png"]
