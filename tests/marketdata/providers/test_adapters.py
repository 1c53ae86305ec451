"""Each adapter against the local server speaking its provider's format: normal, empty, partial, malformed,
throttled, 5xx, retries exhausted, unknown symbol, timeouts. Real AAPL bars, 2021-04-12..16 (AlphaVantage).
"""
import datetime as dt

import pytest

from marketdata.providers import ProviderError, SymbolRequest, get_provider

pytestmark = pytest.mark.usefixtures("providers_at")

START, END = dt.date(2021, 4, 12), dt.date(2021, 4, 16)
AAPL = SymbolRequest("AAPL", "XNAS")
# Each provider's spelling of AAPL, as the server logs it.
AT = {"tiingo": "AAPL", "yahoo": "AAPL", "stooq": "aapl.us"}
PROVIDERS = pytest.mark.parametrize("name", ["tiingo", "yahoo", "stooq"])


def fetch(name, *requests, **options):
    return get_provider(name, **options).fetch(list(requests or [AAPL]), start=START, end=END)


@PROVIDERS
def test_it_returns_the_real_bars_of_the_window(name, server):
    result = fetch(name)

    assert result.outcomes[("AAPL", "XNAS")].status == "ok"
    bars = result.bars
    assert list(bars["date"].dt.date) == [dt.date(2021, 4, d) for d in (12, 13, 14, 15, 16)]
    assert list(bars["close"]) == [131.24, 134.43, 132.03, 134.50, 134.16]
    assert (bars["open"].iat[0], bars["high"].iat[0], bars["low"].iat[0], bars["volume"].iat[0]) == (
        132.52, 132.85, 130.63, 91_419_983)
    assert set(bars["symbol"]) == {"AAPL"} and set(bars["exchange"]) == {"XNAS"}
    assert set(bars["currency"]) == {"USD"}
    assert server.symbols_asked(name) == [AT[name]]


@PROVIDERS
def test_an_empty_answer_is_no_data_in_range_never_delisted(name, server):
    server.script(name, AT[name], "empty")

    result = fetch(name)

    outcome = result.outcomes[("AAPL", "XNAS")]
    assert outcome.status == "no_data"
    assert outcome.message.startswith("no data in range 2021-04-12..2021-04-16")
    assert "delisted" not in outcome.message
    assert result.bars.empty


@PROVIDERS
def test_a_200_with_an_empty_body_is_no_data(name, server):
    server.script(name, AT[name], "blank")

    assert fetch(name).outcomes[("AAPL", "XNAS")].status == "no_data"


@PROVIDERS
def test_a_partial_answer_keeps_the_bars_it_has(name, server):
    server.script(name, AT[name], "partial")

    result = fetch(name)

    # All but the first session came back: 13th..16th, four bars; nothing invented for the 12th.
    assert result.outcomes[("AAPL", "XNAS")].status == "ok"
    assert list(result.bars["close"]) == [134.43, 132.03, 134.50, 134.16]


@PROVIDERS
def test_a_malformed_answer_is_an_error_naming_the_symbol_and_the_other_symbols_still_come_back(name, server):
    server.script(name, AT[name], "malformed")

    result = fetch(name, AAPL, SymbolRequest("MSFT", "XNAS"))

    outcome = result.outcomes[("AAPL", "XNAS")]
    assert outcome.status == "error"
    assert "malformed" in outcome.message and AT[name] in outcome.message
    assert result.outcomes[("MSFT", "XNAS")].status == "ok"
    assert list(result.bars["symbol"].unique()) == ["MSFT"]


@PROVIDERS
def test_429_with_retry_after_is_retried_after_the_wait_it_asks_for(name, server, waits):
    server.script(name, AT[name], "throttle:2", "throttle:2")

    result = fetch(name)

    assert result.outcomes[("AAPL", "XNAS")].status == "ok"
    assert len(result.bars) == 5
    assert server.count(name, AT[name]) == 3
    assert waits == [2, 2]


@PROVIDERS
def test_5xx_is_retried_with_exponential_backoff(name, server, waits):
    server.script(name, AT[name], "error", "error")

    result = fetch(name)

    assert result.outcomes[("AAPL", "XNAS")].status == "ok"
    assert server.count(name, AT[name]) == 3
    # urllib3 backoff 0.5 x 2^(n-1) from the second consecutive error on: none, then 1.0 s.
    assert waits == [1.0]


@PROVIDERS
def test_when_retries_run_out_on_429_the_symbol_is_rate_limited_with_the_providers_retry_after(name, server, waits):
    server.script(name, AT[name], then="throttle:7")

    result = fetch(name, retries=2)

    outcome = result.outcomes[("AAPL", "XNAS")]
    assert (outcome.status, outcome.retry_after) == ("rate_limited", 7)
    assert "429" in outcome.message and AT[name] in outcome.message
    assert server.count(name, AT[name]) == 3  # the first try and two retries
    assert waits == [7, 7]


@PROVIDERS
def test_when_retries_run_out_on_500_the_symbol_is_an_error(name, server):
    server.script(name, AT[name], then="error")

    outcome = fetch(name, retries=1).outcomes[("AAPL", "XNAS")]

    assert outcome.status == "error"
    assert outcome.message.endswith(f"answered HTTP 500 for {AT[name]} after 1 retries")


@PROVIDERS
def test_a_timeout_is_retried(name, server):
    server.script(name, AT[name], "slow:0.6")

    result = fetch(name, timeout=0.2, retries=1)

    assert result.outcomes[("AAPL", "XNAS")].status == "ok"
    assert server.count(name, AT[name]) == 2


@PROVIDERS
def test_timeouts_that_never_end_are_an_error_saying_so(name, server):
    server.script(name, AT[name], then="slow:0.4")

    outcome = fetch(name, timeout=0.1, retries=1).outcomes[("AAPL", "XNAS")]

    assert outcome.status == "error"
    assert "timed out" in outcome.message


def test_an_unknown_symbol_is_an_error_in_the_providers_words_and_never_a_delisting(server):
    tiingo = fetch("tiingo", SymbolRequest("ZZZZ", "XNYS")).outcomes[("ZZZZ", "XNYS")]
    yahoo = fetch("yahoo", SymbolRequest("ZZZZ", "XNYS")).outcomes[("ZZZZ", "XNYS")]
    stooq = fetch("stooq", SymbolRequest("ZZZZ", "XNYS")).outcomes[("ZZZZ", "XNYS")]

    assert (tiingo.status, tiingo.message) == ("error", "Tiingo does not know the ticker ZZZZ (HTTP 404: Error: "
                                                        "Ticker 'ZZZZ' not found)")
    assert yahoo.status == "error" and yahoo.message.startswith("Yahoo does not know ZZZZ (HTTP 404")
    # Stooq answers "No data" for unknown symbols and empty windows alike.
    assert stooq.status == "no_data"


def test_the_rate_limit_spaces_requests_evenly(server, waits):
    clock = [100.0]

    def sleep(seconds):
        waits.append(seconds)
        clock[0] += seconds

    provider = get_provider("stooq", rate=4, sleep_with=sleep, clock=lambda: clock[0])
    provider.fetch([AAPL, SymbolRequest("MSFT", "XNAS"), SymbolRequest("NVDA", "XNAS")], start=START, end=END)

    # 4 requests per second: 0.25 s between the first and second, and the second and third.
    assert waits == [0.25, 0.25]
    assert server.count("stooq") == 3


def test_tiingo_sends_the_token_and_without_one_refuses_naming_the_setting(settings, server):
    fetch("tiingo")
    settings.TIINGO_API_KEY = ""

    with pytest.raises(ProviderError, match="set TIINGO_API_KEY"):
        get_provider("tiingo")
    assert server.count("tiingo") == 1  # the server only answers "Authorization: Token ..."


def test_tiingo_metadata_names_the_listing(server):
    meta = get_provider("tiingo").metadata(SymbolRequest("BRK.B", "XNYS"))

    assert (meta["ticker"], meta["exchangeCode"], meta["startDate"]) == ("brk-b", "NYSE", "2018-05-01")
    assert server.symbols_asked("tiingo") == ["BRK-B"]


def test_tiingo_passes_dividends_and_splits_on_as_actions():
    # AAPL's 4:1 split, ex-date 2020-08-31: splitFactor 4 on that row.
    result = get_provider("tiingo").fetch([AAPL], start=dt.date(2020, 8, 27), end=dt.date(2020, 9, 2))

    actions = result.actions
    assert list(actions["kind"]) == ["split"]
    assert (actions["ex_date"].iat[0].date(), actions["ratio"].iat[0]) == (dt.date(2020, 8, 31), 4.0)
    # Raw closes as traded, and adj factor = adjusted close / close: 124.607673 / 500.04.
    assert list(result.bars["close"]) == [500.04, 499.23, 129.04, 134.18, 131.40]
    assert result.bars["adj_factor"].iat[0] == pytest.approx(124.607673 / 500.04)


def test_yahoo_split_adjusted_prices_are_turned_back_into_raw_ones():
    # Yahoo serves the 2020-08-27 close as 500.04 / 4 = 125.01 (split-adjusted); we store 500.04.
    result = get_provider("yahoo").fetch([AAPL], start=dt.date(2020, 8, 27), end=dt.date(2020, 9, 2))

    bars = result.bars
    assert list(bars["close"].round(6)) == [500.04, 499.23, 129.04, 134.18, 131.40]
    assert list(bars["volume"])[:3] == [38_888_096, 46_907_479, 223_505_733]
    split = result.actions[result.actions["kind"] == "split"]
    assert (split["ex_date"].iat[0].date(), split["ratio"].iat[0]) == (dt.date(2020, 8, 31), 4.0)


def test_yahoo_dates_an_asx_bar_by_its_sydney_session(server):
    # BHP 2024-03-08 opened 10:00 AEDT (UTC+11) = 2024-03-07 23:00 UTC:
    # 19,789 days x 86,400 + 23 x 3,600 = 1,709,852,400.
    result = get_provider("yahoo").fetch([SymbolRequest("BHP", "XASX")], start=dt.date(2024, 3, 8),
                                         end=dt.date(2024, 3, 8))

    assert server.symbols_asked("yahoo") == ["BHP.AX"]
    # period1 is Sydney midnight of the 8th: 2024-03-07 13:00 UTC = 19,789 x 86,400 + 13 x 3,600.
    assert server.hits[-1].params["period1"] == "1709816400"
    assert list(result.bars["date"].dt.date) == [dt.date(2024, 3, 8)]
    assert (result.bars["close"].iat[0], result.bars["currency"].iat[0]) == (43.95, "AUD")


def test_yahoo_stamps_the_asx_session_at_its_utc_opening_instant(server):
    import requests

    answer = requests.get(f"{server.url}/v8/finance/chart/BHP.AX",
                          params={"period1": 1709816400, "period2": 1709902800, "interval": "1d"}).json()

    assert answer["chart"]["result"][0]["timestamp"] == [1709852400]
    assert answer["chart"]["result"][0]["meta"]["exchangeTimezoneName"] == "Australia/Sydney"


def test_stooq_and_tiingo_report_asx_symbols_as_not_covered_without_a_request(server):
    bhp = SymbolRequest("BHP", "XASX")

    assert fetch("stooq", bhp).outcomes[bhp.key].status == "error"
    assert fetch("tiingo", bhp).outcomes[bhp.key].status == "error"
    assert server.count() == 0


def test_an_unreachable_provider_is_given_up_after_three_symbols_naming_the_cause(settings):
    # Nothing listens on port 9: every connection is refused. Three symbols are tried (each retried),
    # the other two are not asked, and every outcome says why.
    import socket

    with socket.socket() as probe:  # a port that was just free, so nothing answers on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    symbols = [SymbolRequest(s, "XNAS") for s in ("AAPL", "MSFT", "NVDA", "GOOGL", "AMZN")]
    provider = get_provider("stooq", retries=1, sleep_with=lambda s: None)
    provider.base_url = f"http://127.0.0.1:{port}"
    asked = []
    fetch_one = provider.fetch_one
    provider.fetch_one = lambda request, start, end: asked.append(request.symbol) or fetch_one(request, start, end)

    outcomes = provider.fetch(symbols, start=START, end=END).outcomes

    assert asked == ["AAPL", "MSFT", "NVDA"]
    assert {outcome.status for outcome in outcomes.values()} == {"error"}
    assert "Connection refused" in outcomes[("AAPL", "XNAS")].message
    assert outcomes[("AMZN", "XNAS")].message.startswith("not asked: Stooq unreachable (3 symbols in a row failed: ")
    assert "Connection refused" in outcomes[("AMZN", "XNAS")].message
