"""Readers that turn a provider's daily bars (sample, CSV, Parquet) into one normalised DataFrame.

Every reader validates the whole input before anything is stored and raises IngestError naming the
file, row and column of the first problem. The normalised frame has one row per received bar, in the
order received, with columns BAR_COLUMNS:

    symbol, exchange, currency, name (str); date (datetime64, midnight, the exchange's calendar day);
    open, high, low, close, volume, adj_factor (float64; NaN = not given, adj_factor 1.0 if unknown).

When the input has them, two more columns carry the corporate actions effective on each bar's date
(ACTION_COLUMNS; marketdata.adjustments turns them into CorporateAction rows):

    dividend (float64: cash per share going ex on this date, 0.0 = none),
    split_ratio (float64: new shares per old effective on this date, 1.0 = none).
"""
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import IngestError
from .models import CURRENCY_OF, Exchange

BAR_COLUMNS = ["symbol", "exchange", "currency", "name", "date",
               "open", "high", "low", "close", "volume", "adj_factor"]
ACTION_COLUMNS = ["dividend", "split_ratio"]

# Header spellings we accept, after lower-casing and turning spaces/hyphens into underscores.
ALIASES = {
    "symbol": "symbol", "ticker": "symbol", "code": "symbol",
    "date": "date",
    "open": "open", "high": "high", "low": "low", "close": "close",
    "volume": "volume", "vol": "volume",
    "adjusted_close": "adjusted_close", "adj_close": "adjusted_close", "adjclose": "adjusted_close",
    "adj_factor": "adj_factor", "adjustment_factor": "adj_factor",
    "exchange": "exchange", "mic": "exchange",
    "currency": "currency",
    "name": "name", "company_name": "name",
    "dividend_amount": "dividend", "dividend": "dividend", "divcash": "dividend",
    "split_coefficient": "split_ratio", "split_ratio": "split_ratio", "split_factor": "split_ratio",
    "splitfactor": "split_ratio",
}
REQUIRED = ("symbol", "date", "close")
EXCHANGES = tuple(Exchange.values)

# bokeh_sampledata's stocks: public-domain Quandl WIKI daily bars, 2000-2013 (GOOG and FB from listing).
SAMPLE_INSTRUMENTS = {
    "AAPL": ("XNAS", "Apple Inc."),
    "GOOG": ("XNAS", "Google Inc. (now Alphabet Inc.)"),
    "MSFT": ("XNAS", "Microsoft Corporation"),
    "FB": ("XNAS", "Facebook, Inc. (now Meta Platforms)"),
    "IBM": ("XNYS", "International Business Machines Corporation"),
}


def read_sample():
    """The real AAPL/GOOG/MSFT/FB/IBM daily bars shipped in the bokeh_sampledata package."""
    path = resources.files("bokeh_sampledata") / "_data" / "stocks.csv.gz"
    raw, labels, label = _read_csv(Path(str(path)))
    symbols = raw["symbol"].str.strip().str.upper()
    raw["exchange"] = symbols.map(lambda s: SAMPLE_INSTRUMENTS.get(s, ("", ""))[0])
    raw["name"] = symbols.map(lambda s: SAMPLE_INSTRUMENTS.get(s, ("", ""))[1])
    return normalise(raw, labels=labels, file=label, first_row=2)


def read_file(path, *, kind=None, exchange="XNYS"):
    """Bars from a CSV (optionally gzipped) or Parquet file; `exchange` is used where the file names none."""
    path = Path(path)
    if not path.is_file():
        raise IngestError("no such file", file=str(path))
    kind = kind or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    if kind == "parquet":
        raw, labels, label = _read_parquet(path)
        return normalise(raw, labels=labels, file=label, first_row=1, exchange=exchange)
    raw, labels, label = _read_csv(path)
    # Row numbers as a spreadsheet shows them: the header is row 1.
    return normalise(raw, labels=labels, file=label, first_row=2, exchange=exchange)


def canonical(header):
    """The contract name of a file's column header ('Adj Close' -> 'adjusted_close'), or None."""
    return ALIASES.get(re.sub(r"[\s\-]+", "_", str(header).strip().lower()))


def _labels(headers, file):
    """Map contract names to the file's own headers, refusing two headers that mean the same thing."""
    labels = {}
    for header in headers:
        name = canonical(header)
        if name is None:
            continue
        if name in labels:
            raise IngestError(f'columns "{labels[name]}" and "{header}" both mean {name}', file=file)
        labels[name] = header
    missing = [name for name in REQUIRED if name not in labels]
    if missing:
        found = ", ".join(f'"{h}"' for h in headers) or "none"
        raise IngestError(f'missing column "{missing[0]}" (columns found: {found})', file=file)
    return labels


def _read_csv(path):
    label = path.name
    try:
        header = pd.read_csv(path, nrows=0).columns
        labels = _labels(list(header), label)
        raw = pd.read_csv(path, usecols=list(labels.values()), dtype=str, skipinitialspace=True)
    except IngestError:
        raise
    except UnicodeDecodeError:
        raise IngestError("not a UTF-8 text file", file=label) from None
    except pd.errors.EmptyDataError:
        raise IngestError("the file is empty", file=label) from None
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as exc:
        raise IngestError(f"cannot be read as CSV: {exc}", file=label) from None
    raw = {name: raw[header] for name, header in labels.items()}
    return raw, labels, label


def _read_parquet(path):
    label = path.name
    raw = {}
    try:
        parquet = pq.ParquetFile(path)
        labels = _labels(parquet.schema_arrow.names, label)
        # One column at a time, so the Arrow copy of only one column is alive next to the result.
        for name, header in labels.items():
            column = parquet.read(columns=[header]).column(0)
            if name == "date" and pa.types.is_date(column.type):
                # Calendar days stay calendar days: no time zone is ever attached.
                column = pc.cast(column, pa.timestamp("s"))
            raw[name] = column.to_pandas()
            del column
    except IngestError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"cannot be read as Parquet: {exc}", file=label) from None
    finally:
        pa.default_memory_pool().release_unused()
    return raw, labels, label


def normalise(raw, *, file, first_row, labels=None, exchange="XNYS"):
    """Validate raw columns ({contract name: Series of text or typed values}) into the normalised frame.

    `labels` maps contract names to the file's own headers, for messages; `first_row` numbers row 0.
    """
    labels = labels or {}
    check = _Checker(file, first_row, labels)
    if exchange not in EXCHANGES:
        raise IngestError(f"unknown exchange {exchange!r} (known: {', '.join(EXCHANGES)})", file=file)
    n = len(raw["symbol"])
    out = {}
    # Text columns are categoricals: a file holds few distinct symbols, exchanges and names.
    out["symbol"] = check.text(raw["symbol"], "symbol", required=True, upper=True)

    if "exchange" in raw:
        exchanges = _recode(check.text(raw["exchange"], "exchange", upper=True), lambda v: v or exchange)
        check.first(~pd.Series(exchanges).isin(EXCHANGES), "exchange",
                    lambda v: f"{v!r} is not a known exchange (known: {', '.join(EXCHANGES)})", raw["exchange"])
    else:
        exchanges = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[exchange])
    out["exchange"] = exchanges

    defaults = _recode(exchanges, lambda v: CURRENCY_OF.get(v, ""))
    if "currency" in raw:
        given = check.text(raw["currency"], "currency", upper=True)
        check.first((given != "") & ~pd.Series(given).str.fullmatch(r"[A-Z]{3}").to_numpy(dtype=bool),
                    "currency", lambda v: f"{v!r} is not an ISO 4217 currency code", raw["currency"])
        currencies = pd.Categorical(np.where(given == "", np.asarray(defaults, dtype=object),
                                             np.asarray(given, dtype=object)))
    else:
        currencies = defaults
    check.first(currencies == "", "currency", lambda v: "missing, and the exchange has no default currency",
                pd.Series(currencies))
    out["currency"] = currencies
    out["name"] = (check.text(raw["name"], "name") if "name" in raw
                   else pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[""]))

    out["date"] = check.dates(raw["date"], "date")
    for column in ("open", "high", "low", "close"):
        out[column] = check.numbers(raw[column], column) if column in raw else np.full(n, np.nan)
    if "volume" in raw:
        volume = check.numbers(raw["volume"], "volume")
        with np.errstate(invalid="ignore"):
            fractional = ~np.isnan(volume) & (volume != np.round(volume))
        check.first(fractional, "volume", lambda v: f"{v!r} is not a whole number of shares", raw["volume"])
        out["volume"] = volume
    else:
        out["volume"] = np.full(n, np.nan)

    close = out["close"]
    factor = np.ones(n)
    if "adj_factor" in raw:
        given = check.numbers(raw["adj_factor"], "adj_factor")
        with np.errstate(invalid="ignore"):
            check.first(given <= 0, "adj_factor", lambda v: f"{v!r} is not a positive factor", raw["adj_factor"])
        factor = np.where(np.isnan(given), 1.0, given)
    elif "adjusted_close" in raw:
        adjusted = check.numbers(raw["adjusted_close"], "adjusted_close")
        with np.errstate(invalid="ignore", divide="ignore"):
            usable = (close > 0) & (adjusted > 0)
            factor = np.where(usable, adjusted / close, 1.0)
    out["adj_factor"] = factor
    columns = list(BAR_COLUMNS)
    if "dividend" in raw:
        dividend = check.numbers(raw["dividend"], "dividend")
        with np.errstate(invalid="ignore"):
            check.first(dividend < 0, "dividend", lambda v: f"{v!r} is not a dividend (negative)", raw["dividend"])
        out["dividend"] = np.where(np.isnan(dividend), 0.0, dividend)
        columns.append("dividend")
    if "split_ratio" in raw:
        ratio = check.numbers(raw["split_ratio"], "split_ratio")
        with np.errstate(invalid="ignore"):
            check.first(ratio <= 0, "split_ratio", lambda v: f"{v!r} is not a split ratio (must be positive)",
                        raw["split_ratio"])
        out["split_ratio"] = np.where(np.isnan(ratio), 1.0, ratio)
        columns.append("split_ratio")
    return pd.DataFrame(out, columns=columns, copy=False)


class _Checker:
    """Column validators that raise IngestError at the first bad row, in the file's own terms."""

    def __init__(self, file, first_row, labels):
        self.file, self.first_row, self.labels = file, first_row, labels

    def first(self, bad, column, problem, values):
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise IngestError(problem(values.iloc[i]), file=self.file, row=self.first_row + i,
                              column=self.labels.get(column, column))

    def text(self, series, column, *, required=False, upper=False):
        """Stripped text as a Categorical; a missing cell becomes ''."""
        values = _recode(series if isinstance(series.dtype, pd.CategoricalDtype) else series.astype("category"),
                         lambda v: v.strip().upper() if upper else v.strip())
        if required:
            self.first(values == "", column, lambda v: "missing", series)
        return values

    def dates(self, series, column):
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            if getattr(series.dt, "tz", None) is not None:
                raise IngestError("timestamps with a time zone; expected calendar dates",
                                  file=self.file, column=self.labels.get(column, column))
            self.first(series.isna(), column, lambda v: "missing", series)
            self.first(series != series.dt.normalize(), column,
                       lambda v: f"{v} has a time of day; expected a calendar date", series)
            return series.astype("datetime64[s]").to_numpy()
        text = self.text(series, column, required=True)
        parsed = pd.to_datetime(pd.Series(text), format="%Y-%m-%d", errors="coerce")
        self.first(parsed.isna(), column, lambda v: f"{v!r} is not a date (expected YYYY-MM-DD)", series)
        return parsed.astype("datetime64[s]").to_numpy()

    def numbers(self, series, column):
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
        else:
            text = pd.Series(self.text(series, column))
            values = pd.to_numeric(text.astype(object).mask(text == ""), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan)
            self.first((text != "").to_numpy() & np.isnan(values), column,
                       lambda v: f"{v!r} is not a number", series)
        self.first(np.isinf(values), column, lambda v: f"{v!r} is not a finite number", series)
        return values


def _recode(values, func):
    """Apply `func` to each category (str) of a Categorical, merging categories that become equal."""
    values = pd.Categorical(values)
    categories = [func("" if pd.isna(c) else str(c)) for c in values.categories] + [func("")]
    codes = values.codes.astype(np.int64)
    codes[codes < 0] = len(categories) - 1
    merged, unique = pd.factorize(pd.Index(categories, dtype=object))
    return pd.Categorical.from_codes(merged[codes], categories=pd.Index(unique, dtype=object))
