import numpy as np
import pandas as pd
import pytest

from quant.indicators import sma


def values(series):
    return series.to_numpy().tolist()


def assert_same(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=0, atol=1e-12)


def test_it_averages_the_last_window_values():
    # (1+2+3)/3 = 2, (2+3+4)/3 = 3, (3+4+5)/3 = 4
    assert_same(sma(pd.Series([1.0, 2.0, 3.0, 4.0, 5.0]), 3), [np.nan, np.nan, 2.0, 3.0, 4.0])


def test_it_is_nan_until_window_valid_values_were_seen():
    # Leading gaps do not count: the first average needs two real values, 5 and 7 -> 6.
    assert_same(sma(pd.Series([np.nan, np.nan, 5.0, 7.0]), 2), [np.nan, np.nan, np.nan, 6.0])


def test_it_skips_missing_values_instead_of_reading_them_as_zero():
    # Valid values 1, 2, 3, 4: averages (1+2)/2 = 1.5, (2+3)/2 = 2.5, (3+4)/2 = 3.5.
    # The missing row carries the average before it (1.5); reading NaN as 0 would give 1.0 and 1.5.
    assert_same(sma(pd.Series([1.0, 2.0, np.nan, 3.0, 4.0]), 2), [np.nan, 1.5, 1.5, 2.5, 3.5])


def test_a_missing_value_during_warm_up_stays_missing():
    # Only one valid value before the gap, so nothing to carry: NaN, NaN, then (1+3)/2 = 2.
    assert_same(sma(pd.Series([1.0, np.nan, 3.0]), 2), [np.nan, np.nan, 2.0])


def test_a_window_longer_than_the_series_gives_only_nan():
    assert np.isnan(values(sma(pd.Series([1.0, 2.0, 3.0]), 4))).all()


def test_window_one_returns_the_values():
    assert_same(sma(pd.Series([3.0, 1.0, 4.0]), 1), [3.0, 1.0, 4.0])


def test_zero_is_a_value_not_a_gap():
    # (0 + 2) / 2 = 1
    assert_same(sma(pd.Series([0.0, 2.0]), 2), [np.nan, 1.0])


def test_it_keeps_index_and_name_and_returns_float64():
    index = pd.DatetimeIndex(["2024-03-04", "2024-03-05", "2024-03-06"])
    result = sma(pd.Series([1, 2, 4], index=index, name="close"), 2)
    assert result.index.equals(index)
    assert result.name == "close"
    assert result.dtype == np.float64
    assert_same(result, [np.nan, 1.5, 3.0])


def test_it_does_not_modify_its_input():
    series = pd.Series([1.0, np.nan, 3.0])
    sma(series, 2)
    assert_same(series, [1.0, np.nan, 3.0])


def test_an_empty_series_gives_an_empty_result():
    assert len(sma(pd.Series([], dtype="float64"), 5)) == 0


@pytest.mark.parametrize("window", [0, -3, 2.5, "50", True, None])
def test_it_rejects_a_window_that_is_not_a_positive_integer(window):
    with pytest.raises(ValueError, match="window must be a positive integer"):
        sma(pd.Series([1.0, 2.0]), window)


# --- sma_frame: sma over every column at once ------------------------------------------------------------

def test_sma_frame_matches_sma_column_by_column_with_gaps():
    from quant.indicators import sma_frame

    rng = np.random.default_rng(3)
    values = rng.normal(100, 5, (60, 7))
    values[rng.random((60, 7)) < 0.2] = np.nan  # gaps everywhere, leading ones too
    values[:, 6] = np.nan  # a column with no value at all
    frame = pd.DataFrame(values, index=pd.bdate_range("2024-01-01", periods=60), columns=list("ABCDEFG"))
    for window in (1, 3, 10, 60, 61):
        result = sma_frame(frame, window)
        for column in frame.columns:
            np.testing.assert_allclose(result[column].to_numpy(), sma(frame[column], window).to_numpy(),
                                       rtol=1e-12, atol=1e-12)


def test_sma_frame_by_hand():
    from quant.indicators import sma_frame

    frame = pd.DataFrame({"A": [1.0, 2.0, np.nan, 3.0, 4.0], "B": [np.nan, np.nan, 5.0, 7.0, np.nan]})
    result = sma_frame(frame, 2)
    # A: as sma: NaN, 1.5, 1.5 carried, (2+3)/2 = 2.5, 3.5. B: NaN, NaN, NaN, (5+7)/2 = 6, 6 carried.
    assert_same(result["A"], [np.nan, 1.5, 1.5, 2.5, 3.5])
    assert_same(result["B"], [np.nan, np.nan, np.nan, 6.0, 6.0])
    with pytest.raises(ValueError, match="window must be a positive integer"):
        sma_frame(frame, 0)


# --- rolling_max: pandas' rolling(window, min_periods=1).max(), vectorised ------------------------------------

def test_rolling_max_by_hand():
    from quant.indicators import rolling_max

    frame = pd.DataFrame({"A": [3.0, 1.0, np.nan, 2.0, 5.0, 4.0], "B": [np.nan, np.nan, 1.0, np.nan, np.nan, np.nan]})
    result = rolling_max(frame, 3)
    # A: max(3) = 3, max(3, 1) = 3, max(3, 1, -) = 3, max(1, -, 2) = 2, max(-, 2, 5) = 5, max(2, 5, 4) = 5.
    assert_same(result["A"], [3, 3, 3, 2, 5, 5])
    # B: nothing yet, nothing, 1, 1, 1, then the window (rows 3..5) holds no value: NaN.
    assert_same(result["B"], [np.nan, np.nan, 1, 1, 1, np.nan])


def test_rolling_max_matches_pandas_on_gappy_columns():
    from quant.indicators import rolling_max

    rng = np.random.default_rng(11)
    values = rng.normal(0, 1, (101, 9))
    values[rng.random((101, 9)) < 0.3] = np.nan
    frame = pd.DataFrame(values)
    for window in (1, 2, 7, 50, 101, 150):
        expected = frame.rolling(window, min_periods=1).max()
        np.testing.assert_array_equal(rolling_max(frame, window).to_numpy(), expected.to_numpy())


def test_sma_frames_gives_each_window_as_sma_frame():
    from quant.indicators import sma_frame, sma_frames

    frame = pd.DataFrame({"A": [1.0, 2.0, np.nan, 3.0, 4.0, 6.0]})
    both = sma_frames(frame, (2, 3))
    pd.testing.assert_frame_equal(both[2], sma_frame(frame, 2))
    # Valid values 1, 2, 3, 4, 6: MA3 at the last row = (3+4+6)/3 = 4.333.
    assert both[3]["A"].iloc[-1] == pytest.approx(13 / 3)
