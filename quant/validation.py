"""Validating a backtest: walk-forward selection, overfitting-aware Sharpe, and the delayed-signal bias check."""
import math

import numpy as np
import pandas as pd

from . import metrics


def walk_forward(returns: pd.DataFrame, *, train: int, test: int, periods_per_year=metrics.TRADING_DAYS) -> dict:
    """Rolling train/test windows over many parameter sets: choose on train, report out of sample.

    returns: dates x parameter sets of daily returns, each set run once over the whole period (the
    strategies are causal, so the returns of a window do not depend on later data). Windows of `train`
    bars then `test` bars roll forward by `test`; in each the set with the highest train Sharpe
    (metrics.sharpe_by_column; ties to the first) is held over the test window. Returns {"folds": [...],
    "oos_returns": Series of the stitched test windows, "oos_sharpe", "is_sharpe" (mean train Sharpe of the
    chosen sets)}; no folds when the data are shorter than train + test.
    """
    if train < 2 or test < 1:
        raise ValueError(f"train must be >= 2 bars and test >= 1, got train={train}, test={test}")
    frame = pd.DataFrame(returns, dtype="float64")
    folds, pieces = [], []
    start = 0
    while start + train + test <= len(frame):
        in_sample = frame.iloc[start:start + train]
        out_sample = frame.iloc[start + train:start + train + test]
        scores = metrics.sharpe_by_column(in_sample, periods_per_year=periods_per_year)
        if scores.notna().any():
            chosen = scores.index[int(np.nanargmax(scores.to_numpy()))]
            piece = out_sample[chosen]
            pieces.append(piece)
            folds.append({
                "train_start": in_sample.index[0], "train_end": in_sample.index[-1],
                "test_start": out_sample.index[0], "test_end": out_sample.index[-1],
                "chosen": chosen, "train_sharpe": float(scores[chosen]),
                "test_sharpe": metrics.sharpe(piece, periods_per_year=periods_per_year),
                "test_return": metrics.total_return(piece),
            })
        start += test
    oos = pd.concat(pieces) if pieces else pd.Series(dtype="float64")
    return {
        "folds": folds,
        "oos_returns": oos,
        "oos_sharpe": metrics.sharpe(oos, periods_per_year=periods_per_year) if len(oos) else math.nan,
        "is_sharpe": float(np.mean([f["train_sharpe"] for f in folds])) if folds else math.nan,
    }


def bias_survival(sharpe, delayed_sharpe):
    """How much of the Sharpe survives when every signal is executed one bar later: delayed / original.

    1.0 means the edge does not hinge on the exact bar; near 0 or negative means it lived on timing
    (often a look-ahead). NaN when the original Sharpe is not positive or either is undefined.
    """
    if not (math.isfinite(sharpe) and math.isfinite(delayed_sharpe)) or sharpe <= 0:
        return math.nan
    return float(delayed_sharpe / sharpe)
