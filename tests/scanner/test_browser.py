"""Headless Chromium draws a hit's setup chart from a live server: candles, the high the close had to be near,
and the line on the scan's session."""
import pytest

from scanner import services
from tests.browser.cdp import Browser
from tests.browser.test_charts_render import chromium  # noqa: F401 (fixture)
from tests.scanner.conftest import rising

pytestmark = pytest.mark.browser


def test_plotly_draws_the_setup_chart_of_a_hit(chromium, live_server, client, alice, universe):  # noqa: F811
    universe("TEST", {"UP": rising(30), "FLAT": rising(30, 10.0, -0.01)})
    run = services.scan(screen="high_52w", universe="TEST", params={"filters": {}, "window": 5, "within": 0})
    hit = run.hits.get()
    client.force_login(alice)
    with Browser(chromium) as browser:
        browser.set_cookie(live_server.url, "sessionid", client.cookies["sessionid"].value)
        page = browser.open(f"{live_server.url}/scanner/hits/{hit.pk}/")
        assert page.evaluate("document.title").startswith("UP")
        page.wait_for("document.querySelector('[data-plotly].js-plotly-plot .main-svg') !== null")
        drawn = page.evaluate("""(() => {
            const el = document.querySelector('[data-plotly]');
            return {
                names: el._fullData.map(t => t.name),
                high: Array.from(el._fullData.find(t => t.name === '5-session high').y),
                candles: el.querySelectorAll('.cartesianlayer .trace.boxes path.box').length,
                lines: el._fullLayout.shapes.filter(s => s.type === 'line').map(s => s.x0),
            };
        })()""")
    assert drawn["names"][0] == "Price" and "5-session high" in drawn["names"]
    assert drawn["high"] == [12.9, 12.9]  # UP's last close, its 5-session high
    assert drawn["candles"] == 30 and drawn["lines"] == ["2023-02-10", "2023-02-10"]
