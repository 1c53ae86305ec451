"""The strategies API: catalog with schemas, POST backtest (202, then poll), 422s naming the field, auth,
the performance table and sweeps."""
import pytest

from strategies.models import BacktestRun, BacktestSweep

pytestmark = pytest.mark.django_db

BACKTEST = "/api/v1/strategies/backtest"


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def post(client, url, body, token, capture):
    with capture(execute=True):
        return client.post(url, body, content_type="application/json", **bearer(token))


def test_the_catalog_lists_every_strategy_with_its_parameter_schema(client, alice_read):
    response = client.get("/api/v1/strategies", **bearer(alice_read))
    assert response.status_code == 200
    body = {s["name"]: s for s in response.json()}
    assert list(body) == ["buy_and_hold", "moving_average", "momentum", "dual_momentum", "breakout", "olmar"]
    momentum = body["momentum"]
    assert momentum["defaults"] == {"lookback_months": 12, "skip_months": 1, "top_n": 20, "weighting": "equal",
                                    "vol_window": 63}
    assert momentum["params_schema"]["properties"]["weighting"]["enum"] == ["equal", "inverse_vol"]
    assert body["olmar"]["params_schema"]["properties"]["epsilon"]["minimum"] == 1.0


def test_without_credentials_it_is_401(client):
    assert client.get("/api/v1/strategies").status_code == 401
    assert client.post(BACKTEST, {}, content_type="application/json").status_code == 401


def test_post_answers_202_with_the_run_id_and_the_run_can_be_polled(client, alice_write, desk,
                                                                    django_capture_on_commit_callbacks):
    response = post(client, BACKTEST, {"strategy": "momentum", "params": {"top_n": 3, "lookback_months": 6},
                                       "universe": "SP500", "start": "2014-01-02", "end": "2016-12-30",
                                       "commission_bps": 8, "fill": "open"}, alice_write, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    created = response.json()
    assert created["status"] == "queued"  # answered before the work, which runs when the request commits
    assert created["url"] == f"/backtests/{created['id']}/"
    run = client.get(created["api_url"], **bearer(alice_write)).json()
    assert run["status"] == "success", run["error"]
    assert run["params"]["strategy"]["top_n"] == 3 and run["params"]["engine"]["commission_bps"] == 8.0
    assert run["params"]["engine"]["fill"] == "open" and run["requested_by"] == "alice"
    assert run["survivorship_biased"] is False and run["first_bar"] == "2014-01-02"
    assert set(run["metrics"]) >= {"total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar",
                                   "win_rate", "profit_factor", "turnover", "exposure", "var_95", "cvar_95",
                                   "best_month", "worst_month"}
    assert run["benchmark"]["sharpe"] is not None
    assert set(run["bias_check"]) >= {"sharpe", "delayed_sharpe", "survival"}
    assert 0 <= run["psr"] <= 1
    stored = BacktestRun.objects.get(pk=created["id"])
    assert run["metrics"]["sharpe"] == stored.metrics["strategy"]["values"]["sharpe"]


@pytest.mark.parametrize("body, loc, text", [
    ({"strategy": "momentum", "params": {"top_n": 0}}, ["body", "payload", "params", "top_n"], "greater than or equal to 1"),
    ({"strategy": "warp"}, ["body", "payload", "strategy"], "unknown strategy 'warp'"),
    ({"strategy": "olmar", "params": {"window": "five"}}, ["body", "payload", "params", "window"], "valid integer"),
    ({"strategy": "momentum", "universe": "NOWHERE"}, ["body", "payload", "universe"], "'NOWHERE' is neither"),
    ({"strategy": "momentum", "start": "2016-01-01", "end": "2015-01-01"}, ["body", "payload", "start"], "is after end"),
])
def test_bad_input_is_a_422_naming_the_field(client, alice_write, desk, body, loc, text):
    response = client.post(BACKTEST, body, content_type="application/json", **bearer(alice_write))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == loc
    assert text in problem["msg"]
    assert not BacktestRun.objects.exists()


def test_schema_level_problems_are_422s_too(client, alice_write):
    response = client.post(BACKTEST, {"strategy": "momentum", "commission_bps": -1}, content_type="application/json",
                           **bearer(alice_write))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "commission_bps"]


def test_a_read_only_token_cannot_start_a_backtest(client, alice_read):
    response = client.post(BACKTEST, {"strategy": "momentum"}, content_type="application/json", **bearer(alice_read))
    assert response.status_code == 403
    assert "read-only scope" in response.json()["detail"]


def test_an_unknown_run_is_404(client, alice_read):
    response = client.get("/api/v1/strategies/backtests/999", **bearer(alice_read))
    assert response.status_code == 404
    assert response.json() == {"detail": "no backtest with id 999"}


def test_performance_compares_the_latest_run_of_each_strategy(client, alice_write, desk,
                                                              django_capture_on_commit_callbacks):
    for body in ({"strategy": "buy_and_hold", "universe": "AAPL,MSFT"},
                 {"strategy": "buy_and_hold", "universe": "SP500"},
                 {"strategy": "moving_average", "universe": "AAPL", "params": {"fast": 10, "slow": 50}}):
        assert post(client, BACKTEST, body, alice_write, django_capture_on_commit_callbacks).status_code == 202
    rows = client.get("/api/v1/strategies/performance", **bearer(alice_write)).json()
    assert [(r["strategy"], r["universe"]) for r in rows] == [("buy_and_hold", "SP500"), ("moving_average", "AAPL")]
    latest = BacktestRun.objects.get(strategy="buy_and_hold", universe="SP500")
    assert rows[0]["sharpe"] == latest.metrics["strategy"]["values"]["sharpe"]
    assert rows[0]["benchmark_sharpe"] is not None and rows[1]["survivorship_biased"] is True
    listed = client.get("/api/v1/strategies/backtests?strategy=buy_and_hold", **bearer(alice_write)).json()
    assert listed["count"] == 2


def test_a_sweep_runs_every_set_and_validates_the_grid(client, alice_write, desk, django_capture_on_commit_callbacks):
    body = {"strategy": "moving_average", "universe": "AAPL", "start": "2013-06-03", "end": "2016-12-30",
            "grid": {"fast": [10, 20, 200], "slow": [50, 100]}, "commission_min": 0, "chunk_size": 2,
            "train": 252, "test": 63}
    response = post(client, "/api/v1/strategies/sweeps", body, alice_write, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    sweep = client.get(f"/api/v1/strategies/sweeps/{response.json()['id']}", **bearer(alice_write)).json()
    assert (sweep["status"], sweep["combinations"], sweep["chunks"], sweep["done"]) == ("success", 6, 3, 6)
    by_params = {(r["params"].get("fast"), r["params"].get("slow")): r for r in sweep["results"]}
    # fast 200 >= slow: skipped with the model's reason, not failed.
    assert by_params[(200, 50)]["metrics"] == {"skipped": "fast (200) must be shorter than slow (50)"}
    assert by_params[(10, 50)]["metrics"]["sharpe"] is not None and by_params[(10, 50)]["worker"] == "eager"
    validation = sweep["validation"]
    assert validation["trials"] == 4
    assert 0 <= validation["deflated_sharpe"] <= validation["psr"] <= 1
    assert validation["walk_forward"]["folds"] and validation["walk_forward"]["oos_sharpe"] is not None
    best = max((r for r in sweep["results"] if "sharpe" in r["metrics"]), key=lambda r: r["metrics"]["sharpe"])
    assert validation["best"]["index"] == best["index"]


def test_the_sweep_path_of_a_moving_average_equals_a_single_run(client, alice_write, desk,
                                                                django_capture_on_commit_callbacks):
    # The vectorised sweep path (proportional costs, one instrument) against the engine's own run.
    common = {"strategy": "moving_average", "universe": "AAPL", "start": "2014-01-02", "end": "2016-12-30",
              "commission_min": 0}
    post(client, "/api/v1/strategies/sweeps", {**common, "grid": {"fast": [20], "slow": [100]}}, alice_write,
         django_capture_on_commit_callbacks)
    post(client, BACKTEST, {**common, "params": {"fast": 20, "slow": 100}}, alice_write, django_capture_on_commit_callbacks)
    [result] = BacktestSweep.objects.get().results.all()
    run = BacktestRun.objects.get()
    assert result.metrics["sharpe"] == pytest.approx(run.metrics["strategy"]["values"]["sharpe"], rel=1e-9)
    assert result.metrics["orders"] == run.metrics["strategy"]["values"]["orders"]


def test_a_bad_grid_names_the_parameter(client, alice_write, desk):
    response = client.post("/api/v1/strategies/sweeps", {"strategy": "momentum", "grid": {"top": [1, 2]}},
                           content_type="application/json", **bearer(alice_write))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "grid", "top"]
    response = client.post("/api/v1/strategies/sweeps", {"strategy": "momentum", "grid": {"top_n": [0, 2]}},
                           content_type="application/json", **bearer(alice_write))
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "grid", "top_n"]
    assert "0: Input should be greater than or equal to 1" == response.json()["detail"][0]["msg"]


def test_the_openapi_schema_builds_with_the_strategy_operations(openapi_spec):
    paths = openapi_spec["paths"]
    assert {"/api/v1/strategies", "/api/v1/strategies/backtest", "/api/v1/strategies/backtests/{run_id}",
            "/api/v1/strategies/performance", "/api/v1/strategies/sweeps"} <= set(paths)


def test_another_trader_s_runs_and_sweeps_answer_404_and_are_not_listed(client, alice, bob):
    import datetime as dt

    from parakeet.models import ApiToken

    span = {"universe": "AAPL", "start": dt.date(2014, 1, 2), "end": dt.date(2016, 12, 30)}
    hers = BacktestRun.objects.create(strategy="buy_and_hold", requested_by=alice, status="success",
                                      finished_at=dt.datetime(2024, 3, 8, tzinfo=dt.timezone.utc), **span)
    older = BacktestRun.objects.create(strategy="buy_and_hold", requested_by=bob, status="success",
                                       finished_at=dt.datetime(2024, 3, 7, tzinfo=dt.timezone.utc), **span)
    sweep = BacktestSweep.objects.create(strategy="moving_average", combinations=1, chunks=1, requested_by=alice,
                                         params={"grid": {"fast": [20]}}, **span)
    token = ApiToken(user=bob, name="bob read", scope="read")
    raw = token.issue()
    token.save()
    assert client.get(f"/api/v1/strategies/backtests/{hers.pk}", **bearer(raw)).status_code == 404
    assert client.get(f"/api/v1/strategies/sweeps/{sweep.pk}", **bearer(raw)).status_code == 404
    assert [r["id"] for r in client.get("/api/v1/strategies/backtests", **bearer(raw)).json()["items"]] == [older.pk]
    # His performance table shows his latest run of the strategy, not hers (newer, but not his to see).
    assert [r["id"] for r in client.get("/api/v1/strategies/performance", **bearer(raw)).json()] == [older.pk]
