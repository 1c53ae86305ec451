"""Headless Chromium loads a backtest page from a live server and plotly.js draws all four charts."""
import datetime as dt

import pytest

from strategies import services
from tests.browser.cdp import Browser
from tests.browser.test_charts_render import chromium  # noqa: F401 (fixture)
from tests.strategies.conftest import desk, desk_files, local_storage  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_plotly_draws_the_backtest_charts_and_the_log_toggle(chromium, live_server, client, alice, desk,  # noqa: F811
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_backtest(strategy="momentum", params={"top_n": 2, "lookback_months": 6},
                                      universe="SP500", start=dt.date(2014, 1, 2), end=dt.date(2016, 12, 30))
    client.force_login(alice)
    with Browser(chromium) as browser:
        browser.set_cookie(live_server.url, "sessionid", client.cookies["sessionid"].value)
        page = browser.open(f"{live_server.url}/backtests/{run.pk}/")
        assert page.evaluate("document.title").startswith(f"Backtest #{run.pk}")
        page.wait_for("Array.from(document.querySelectorAll('[data-plotly]')).filter("
                      "el => el.querySelector('.main-svg') !== null).length === 4")
        drawn = page.evaluate("""(() => {
            const charts = Array.from(document.querySelectorAll('[data-plotly]'));
            const equity = charts[0];
            return {
                ids: charts.map(el => el.getAttribute('data-plotly')),
                equityTraces: equity._fullData.map(t => t.name),
                points: equity._fullData[0].y.length,
                toggle: Array.from(equity.querySelectorAll('.updatemenu-button text')).map(t => t.textContent),
                heatmap: charts[2]._fullData[0].type,
            };
        })()""")
    assert drawn["ids"] == ["equity-chart", "drawdown-chart", "monthly-chart", "rolling-chart"]
    assert drawn["equityTraces"] == ["Strategy", "Benchmark (equal-weight buy and hold)"]
    assert drawn["points"] == 756  # 2014-01-02 .. 2016-12-30 sessions
    assert drawn["toggle"] == ["Linear", "Log"]
    assert drawn["heatmap"] == "heatmap"
