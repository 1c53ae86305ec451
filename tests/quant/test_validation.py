"""Probabilistic and deflated Sharpe, Sharpe by column, walk-forward and the bias check, on hand-computed values."""
import math

import numpy as np
import pandas as pd
import pytest

from quant import metrics, validation


def test_sharpe_by_column_is_sharpe_of_each_column():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(0.0005, 0.01, (200, 4)), columns=list("abcd"))
    frame.iloc[5, 1] = np.nan
    frame["flat"] = 0.001
    out = metrics.sharpe_by_column(frame)
    for name in "abcd":
        assert out[name] == pytest.approx(metrics.sharpe(frame[name]), rel=1e-12)
    assert math.isnan(out["flat"])


def test_psr_of_the_br03_series():
    # BR-03's 10 returns: per-day SR = 0.0015 / 0.0056814 = 0.26402; population skew 0.14562, kurtosis 1.60121:
    # var = 1 - 0.14562 x 0.26402 + (1.60121 - 1) / 4 x 0.26402^2 = 0.97203; z = 0.26402 x 3 / 0.98591 = 0.80338;
    # Phi(0.80338) = 0.7891.
    r = pd.Series([0.010, -0.005, 0.007, -0.002, 0.004, -0.001, 0.003, -0.006, 0.008, -0.003])
    skew, kurt = metrics._moments(r.to_numpy())
    c = r - r.mean()
    assert skew == pytest.approx((c**3).mean() / (c**2).mean() ** 1.5)
    assert kurt == pytest.approx((c**4).mean() / (c**2).mean() ** 2)
    sr = 0.0015 / r.std(ddof=1)
    z = sr * 3 / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    from statistics import NormalDist
    assert metrics.probabilistic_sharpe(r) == pytest.approx(NormalDist().cdf(z), rel=1e-12)
    assert metrics.probabilistic_sharpe(r) == pytest.approx(0.7891, abs=1e-4)


def test_deflated_sharpe_reproduces_bailey_and_lopez_de_prado():
    # Their example: SR 2.5 a year over 1,250 days, skew -3, kurtosis 10, 100 trials whose annualised
    # Sharpe ratios have variance 0.5: the luck benchmark is 0.1132 a day (1.79 a year), DSR = 0.9004.
    per_day = 0.5 / 250
    benchmark = metrics.expected_max_sharpe(per_day, 100)
    assert benchmark == pytest.approx(0.1132, abs=1e-4)
    assert metrics.probabilistic_sharpe_from_stats(2.5 / math.sqrt(250), 1250, -3, 10, benchmark) == pytest.approx(0.9004, abs=1e-4)


def test_more_trials_deflate_more():
    rng = np.random.default_rng(11)
    r = pd.Series(rng.normal(0.001, 0.01, 750))
    few = metrics.deflated_sharpe(r, [1.0, 1.4, 1.6])
    many = metrics.deflated_sharpe(r, np.linspace(-1, 1.6, 200))
    assert 0 < many < few < 1
    # One trial: the benchmark is 0 and DSR is the plain PSR.
    assert metrics.deflated_sharpe(r, [1.5]) == pytest.approx(metrics.probabilistic_sharpe(r))


def test_walk_forward_chooses_on_train_and_reports_the_test_window():
    # Two sets over 8 bars; train 4, test 2 -> folds at bars 0-3|4-5 and 2-5|6-7.
    days = pd.bdate_range("2024-01-01", periods=8)
    frame = pd.DataFrame({
        "good_early": [0.01, 0.02, 0.01, 0.02, -0.01, -0.02, -0.01, -0.01],
        "good_late": [0.00, -0.01, 0.01, -0.01, 0.02, 0.01, 0.03, 0.02],
    }, index=days)
    out = validation.walk_forward(frame, train=4, test=2)
    assert [f["chosen"] for f in out["folds"]] == ["good_early", "good_late"]
    # Out of sample: good_early on bars 4-5 (-1%, -2%), good_late on bars 6-7 (+3%, +2%).
    np.testing.assert_allclose(out["oos_returns"].to_numpy(), [-0.01, -0.02, 0.03, 0.02])
    assert out["folds"][0]["test_return"] == pytest.approx(0.99 * 0.98 - 1)
    assert out["oos_sharpe"] == pytest.approx(metrics.sharpe(pd.Series([-0.01, -0.02, 0.03, 0.02])))


def test_walk_forward_needs_enough_data():
    out = validation.walk_forward(pd.DataFrame({"a": [0.01, 0.02]}), train=4, test=2)
    assert out["folds"] == [] and math.isnan(out["oos_sharpe"])
    with pytest.raises(ValueError, match="train must be >= 2"):
        validation.walk_forward(pd.DataFrame({"a": [0.01]}), train=1, test=1)


def test_bias_survival_is_the_share_of_sharpe_left_after_a_one_bar_delay():
    assert validation.bias_survival(1.6, 1.2) == pytest.approx(0.75)
    assert validation.bias_survival(1.6, -0.4) == pytest.approx(-0.25)
    assert math.isnan(validation.bias_survival(-0.5, 0.2))
    assert math.isnan(validation.bias_survival(float("nan"), 0.2))
