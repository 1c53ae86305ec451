"""Parquet panels of the daily bars in STORAGES["marketdata"], and the one loader that hands them to quant.

Layout: one object per exchange and year, and one small manifest per exchange (see docs/panels.md):

    ohlcv/daily/{exchange}/{year}.parquet   every bar of the exchange's instruments dated in that year,
                                            quarantined ones included (with their flag), sorted by
                                            instrument_id then date; zstd; row groups of 64k rows
    ohlcv/daily/{exchange}/_manifest.json   schema version, instrument id -> symbol, and per file: rows,
                                            first/last date, newest updated_at, bytes, sha256

Why this shape:
- An exchange-year is what changes together. The daily chain runs per exchange after its close and adds
  one session, so a refresh rewrites one object (about 2 MB for 500 instruments) instead of one per instrument;
  older years change only when a corporate action recomputes factors or a reviewer fixes a bar, and then
  only those years are rewritten.
- Reading a 500-instrument x 14-year panel is 15 whole-object reads. Per-instrument objects
  (`ohlcv/daily/AAPL/2024.parquet`) would be 7,000 GETs a panel and 500 PUTs a day; one object per exchange
  would rewrite 14 years every day.
- Sorted by instrument then date, one instrument's rows are contiguous: the row groups' instrument_id
  statistics let a reader of a few instruments skip most of a file, and the columns compress well.
- One manifest per exchange, because the two exchanges' daily chains run at different hours and may
  overlap; each writes only its own.

A file is rewritten when its fingerprint in the database (bar count and newest updated_at for that
exchange-year) differs from its manifest entry, when the object is missing, or when an instrument of the
exchange changed its symbol. Every write to PriceBar bumps updated_at (the bulk upsert only when values
change) and a deleted bar changes the count, so a second refresh with nothing new writes nothing. The
manifest records what was read, never the wall clock: bars a concurrent ingest committed during a refresh
are picked up by the next one.

Readers never refresh behind the caller's back: load_panel and load_bars check the manifest against the
database (bar count and newest updated_at per exchange) and raise PanelsMissing or PanelsStale naming the
exchange and the command that fixes it. The daily chain refreshes after every ingest.

Objects are replaced in place: the settings give FileSystemStorage `allow_overwrite` and S3Storage
`file_overwrite` (PITFALLS BR-27), and a storage that still renames a write is an error, not a silent
sibling. Timestamps are stored as microseconds, never milliseconds (BR-28); dates are date32 calendar
days, which no reader's time zone can shift.
"""
import datetime as dt
import hashlib
import io
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from django.core.files import File
from django.core.files.storage import storages
from django.db import connection
from django.db.models import Count, Max, Min

from .models import Exchange, Instrument, PriceBar, parse_symbol
from .symbology import SymbolError

SCHEMA_VERSION = "ohlcv_daily/1"
ROOT = "ohlcv/daily"
ROW_GROUP_ROWS = 65_536
READ_THREADS = 8

_TEXT = pa.dictionary(pa.int32(), pa.string())
_UTC_US = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    pa.field("instrument_id", pa.int64(), nullable=False),
    pa.field("exchange", _TEXT, nullable=False),
    pa.field("symbol", _TEXT, nullable=False),
    pa.field("date", pa.date32(), nullable=False),
    pa.field("open", pa.float64()),
    pa.field("high", pa.float64()),
    pa.field("low", pa.float64()),
    pa.field("close", pa.float64()),
    pa.field("volume", pa.int64()),
    pa.field("adj_factor", pa.float64(), nullable=False),
    pa.field("flags", pa.int32(), nullable=False),
    pa.field("quarantined", pa.bool_(), nullable=False),
    pa.field("source", _TEXT, nullable=False),
    pa.field("ingested_at", _UTC_US, nullable=False),
    pa.field("updated_at", _UTC_US, nullable=False),
], metadata={"parakeet.schema": SCHEMA_VERSION})

PRICES = ("open", "high", "low", "close")
# Panel fields: stored columns as float64, and the adjusted prices (raw x adj_factor).
FIELDS = (*PRICES, "volume", "adj_factor", *(f"adj_{p}" for p in PRICES))
BAR_FRAME_COLUMNS = ["instrument_id", "key", "exchange", "symbol", "date", *PRICES, "volume", "adj_factor",
                     *(f"adj_{p}" for p in PRICES), "flags", "quarantined"]


class PanelError(Exception):
    """The panels cannot answer: bad arguments, a storage that will not overwrite, an unknown symbol."""


class PanelsMissing(PanelError):
    """The database holds bars of an exchange that has no panels yet."""


class PanelsStale(PanelError):
    """An exchange's panels are older than its bars in the database."""


def panel_key(exchange, year):
    return f"{ROOT}/{exchange}/{year}.parquet"


def manifest_key(exchange):
    return f"{ROOT}/{exchange}/_manifest.json"


# --- refresh ---------------------------------------------------------------------------------------------

def refresh_panels(*, exchange: str | None = None, since: dt.date | None = None, full: bool = False) -> dict:
    """Rewrite the panel files whose bars changed in the database, then the exchange's manifest.

    exchange: only this exchange (default: every exchange with bars or panels). since: only look at files
    of bars dated in since's year or later (a quick daily refresh; the default looks at every year).
    full: rewrite every file whatever its fingerprint. Returns {"written": [keys], "skipped": [keys],
    "deleted": [keys], "rows": rows written}. Raises PanelError for an unknown exchange or a storage
    that saved a file under another name.
    """
    storage = storages["marketdata"]
    exchanges = _exchanges(storage, exchange)
    result = {"written": [], "skipped": [], "deleted": [], "rows": 0}
    for name in exchanges:
        _refresh_exchange(storage, name, since=since, full=full, result=result)
    return result


def refresh_panels_and_say(out) -> dict:
    """refresh_panels() after a command changed bars, with one line on `out` saying what it wrote."""
    import time

    began = time.monotonic()
    result = refresh_panels()
    out.write(f"panels: {len(result['written'])} files rewritten ({result['rows']:,} bars), "
              f"{len(result['skipped'])} unchanged, in {time.monotonic() - began:.1f} s")
    return result


def _refresh_exchange(storage, exchange, *, since, full, result):
    manifest = read_manifest(exchange, storage=storage)
    symbols = dict(Instrument.objects.filter(exchange=exchange).values_list("id", "symbol"))
    old_symbols = {int(pk): symbol for pk, symbol in (manifest or {}).get("instruments", {}).items()}
    # A renamed instrument's symbol is in every file that holds its bars: rewrite them all.
    renamed = any(old_symbols.get(pk, symbol) != symbol for pk, symbol in symbols.items())
    files = dict((manifest or {}).get("files", {}))
    first_year = since.year if since else None
    in_database = _fingerprints(exchange, first_year)
    changed = manifest is None or old_symbols != symbols
    for year, (rows, newest) in in_database.items():
        key, entry = panel_key(exchange, year), files.get(str(year))
        if (not full and not renamed and entry and entry["rows"] == rows
                and entry["max_updated_at"] == _iso(newest) and storage.exists(key)):
            result["skipped"].append(key)
            continue
        table = bars_table(_database_bars(exchange, year, symbols))
        files[str(year)] = write_table(key, table, storage=storage)
        result["written"].append(key)
        result["rows"] += table.num_rows
        changed = True
    for year in sorted(files, key=int):
        if int(year) not in in_database and (first_year is None or int(year) >= first_year):
            # Every bar of that year is gone (dropped, or moved to another exchange).
            storage.delete(files.pop(year)["key"])
            result["deleted"].append(panel_key(exchange, year))
            changed = True
    if changed:
        _write_manifest(storage, exchange, files, symbols)


def _exchanges(storage, exchange):
    if exchange is not None:
        if exchange not in Exchange.values:
            raise PanelError(f"unknown exchange {exchange!r} (known: {', '.join(Exchange.values)})")
        return [exchange]
    return [e for e in Exchange.values
            if PriceBar.objects.filter(instrument__exchange=e).exists() or storage.exists(manifest_key(e))]


def _fingerprints(exchange, first_year):
    """{year: (bars, newest updated_at)} of the exchange's bars in the database.

    One range query per year: each walks the (instrument_id, date) index for that year only, where a
    GROUP BY on the year would sort every bar of the exchange (0.35 s against 1.4-2.4 s on SQLite).
    """
    span = PriceBar.objects.order_by().aggregate(first=Min("date"), last=Max("date"))
    if span["first"] is None:
        return {}
    listed = Instrument.objects.filter(exchange=exchange).values("id")
    found = {}
    for year in range(max(span["first"].year, first_year or 0), span["last"].year + 1):
        row = (PriceBar.objects.order_by().filter(instrument_id__in=listed, date__gte=dt.date(year, 1, 1),
                                                   date__lt=dt.date(year + 1, 1, 1))
               .aggregate(bars=Count("id"), newest=Max("updated_at")))
        if row["bars"]:
            found[year] = (row["bars"], row["newest"])
    return found


def _database_bars(exchange, year, symbols):
    """One exchange-year of bars straight from the database, as columns for bars_table."""
    where = (f"FROM {PriceBar._meta.db_table} b "
             f"WHERE b.instrument_id IN (SELECT id FROM {Instrument._meta.db_table} WHERE exchange = %s) "
             "AND b.date >= %s AND b.date < %s ORDER BY b.instrument_id, b.date")
    params = [exchange, dt.date(year, 1, 1), dt.date(year + 1, 1, 1)]
    if connection.vendor == "postgresql":
        columns = _copy_postgresql(where, params)
    else:
        # Text out of CAST: a column declared date/datetime would be parsed by a Python converter per row.
        sql = (f"SELECT b.instrument_id, CAST(b.date AS text), b.open, b.high, b.low, b.close, b.volume, "
               f"b.adj_factor, b.flags, b.quarantined, b.source, CAST(b.created_at AS text), "
               f"CAST(b.updated_at AS text) {where}")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        names = ["instrument_id", "date", *PRICES, "volume", "adj_factor", "flags", "quarantined", "source",
                 "ingested_at", "updated_at"]
        columns = dict(zip(names, (list(c) for c in zip(*rows)))) if rows else {n: [] for n in names}
        columns["date"] = np.array(columns["date"], dtype="datetime64[D]")
        for name in ("ingested_at", "updated_at"):
            # Django stores aware datetimes as naive UTC text: '2024-03-08 21:30:00.123456'.
            columns[name] = pd.to_datetime(columns[name], utc=True, format="ISO8601")
    ids = np.asarray(columns["instrument_id"], dtype=np.int64)
    known = np.array(sorted(symbols), dtype=np.int64)
    return {
        **{name: np.asarray(columns[name], dtype=np.float64) for name in (*PRICES, "volume", "adj_factor")},
        "instrument_id": ids,
        "exchange": pd.Categorical.from_codes(np.zeros(len(ids), dtype=np.int32), categories=[exchange]),
        "symbol": pd.Categorical.from_codes(np.searchsorted(known, ids).astype(np.int32),
                                            categories=[symbols[pk] for pk in known.tolist()]),
        "date": columns["date"],
        "flags": np.asarray(columns["flags"], dtype=np.int32),
        "quarantined": np.asarray(columns["quarantined"], dtype=bool),
        "source": pd.Categorical(np.asarray(columns["source"], dtype=object)),
        "ingested_at": columns["ingested_at"],
        "updated_at": columns["updated_at"],
    }


_COPY_TYPES = {"instrument_id": pa.int64(), "date": pa.int32(), **{p: pa.float64() for p in PRICES},
               "volume": pa.int64(), "adj_factor": pa.float64(), "flags": pa.int32(), "quarantined": pa.bool_(),
               "source": pa.string(), "ingested_at": pa.int64(), "updated_at": pa.int64()}


def _copy_postgresql(where, params):
    """PostgreSQL: COPY the rows out as CSV and let pyarrow parse it; no Python object per value."""
    micros = "(EXTRACT(EPOCH FROM b.{}) * 1000000)::bigint"
    sql = (f"COPY (SELECT b.instrument_id, (b.date - DATE '1970-01-01'), b.open, b.high, b.low, b.close, b.volume, "
           f"b.adj_factor, b.flags, b.quarantined, b.source, {micros.format('created_at')}, "
           f"{micros.format('updated_at')} {where}) TO STDOUT (FORMAT csv)")
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql, params) as copy:
            for chunk in copy:
                buffer.write(chunk)
    names = list(_COPY_TYPES)
    table = pa_csv.read_csv(
        io.BytesIO(buffer.getvalue()), read_options=pa_csv.ReadOptions(column_names=names),
        convert_options=pa_csv.ConvertOptions(column_types=_COPY_TYPES, null_values=[""], true_values=["t"],
                                              false_values=["f"], strings_can_be_null=False))
    columns = {name: table[name].to_numpy() if name in ("instrument_id", "flags") else table[name]
               for name in names}
    for name in (*PRICES, "volume", "adj_factor"):
        columns[name] = _float(table[name])
    columns["quarantined"] = table["quarantined"].to_numpy(zero_copy_only=False)
    columns["source"] = table["source"].to_numpy(zero_copy_only=False)
    columns["date"] = table["date"].to_numpy().astype("datetime64[D]")
    for name in ("ingested_at", "updated_at"):
        columns[name] = pd.DatetimeIndex(table[name].to_numpy().astype("datetime64[us]"), tz="UTC")
    return columns


# --- the writer ------------------------------------------------------------------------------------------

def bars_table(bars) -> pa.Table:
    """Bars as a table of exactly SCHEMA, sorted by instrument_id then date: the only way rows reach a file.

    bars: a DataFrame (or a mapping of columns) with SCHEMA's column names. date: calendar days
    (datetime64 at midnight, or datetime.date); prices, adj_factor: float64, NaN = missing (stored NULL);
    volume: whole numbers, NaN/NA = missing; ingested_at, updated_at: datetimes, naive = UTC, any unit
    (nanoseconds are cut to microseconds on purpose, BR-28). Raises PanelError naming the column.
    """
    arrays = []
    for field in SCHEMA:
        if field.name not in bars:
            raise PanelError(f"bars have no column {field.name!r}")
        arrays.append(_arrow(field, bars[field.name]))
    table = pa.Table.from_arrays(arrays, schema=SCHEMA)
    return table.sort_by([("instrument_id", "ascending"), ("date", "ascending")])


def _arrow(field, values):
    name, kind = field.name, field.type
    try:
        if kind == _TEXT:
            categorical = values if isinstance(values, pd.Categorical) else pd.Categorical(values)
            return pa.DictionaryArray.from_arrays(pa.array(np.asarray(categorical.codes, dtype=np.int32)),
                                                  pa.array(categorical.categories.astype(str), pa.string()))
        if kind == pa.date32():
            days = values if isinstance(values, np.ndarray) else pd.DatetimeIndex(values)
            if getattr(days, "tz", None) is not None:
                raise PanelError(f"column {name!r}: bar dates are calendar days, not moments in a time zone")
            stamps = np.asarray(days, dtype="datetime64[us]")
            if (stamps.astype(np.int64) % 86_400_000_000).any():
                raise PanelError(f"column {name!r}: a bar date has a time of day (dates are calendar days)")
            return pa.array(stamps.astype("datetime64[D]"), pa.date32())
        if kind == _UTC_US:
            stamps = pd.DatetimeIndex(values)
            stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
            return pa.array(stamps.floor("us").as_unit("us"), _UTC_US)
        if kind == pa.int64() and name == "volume":
            return pa.array(pd.Series(values, copy=False).astype("Int64"), pa.int64())
        if kind == pa.float64():
            array = np.asarray(values, dtype=np.float64)
            if not field.nullable and np.isnan(array).any():
                raise PanelError(f"column {name!r} has missing values")
            return pa.array(array, pa.float64(), from_pandas=True)
        return pa.array(np.asarray(values), kind)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise PanelError(f"column {name!r}: {exc}") from exc


def write_table(key, table, *, storage=None) -> dict:
    """Write `table` (SCHEMA) as the Parquet object `key`, replacing what was there; its manifest entry."""
    if table.schema != SCHEMA or table.schema.metadata != SCHEMA.metadata:
        raise PanelError(f"{key}: the table does not have the panel schema {SCHEMA_VERSION}")
    storage = storage or storages["marketdata"]
    with _scratch(storage, key) as path:
        pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        entry = {"key": key, "rows": table.num_rows, "bytes": os.path.getsize(path), "sha256": _sha256(path)}
        _save(storage, key, path)
    dates = table["date"]
    entry.update({
        "first_date": _day(pc.min(dates).as_py()), "last_date": _day(pc.max(dates).as_py()),
        "instruments": len(pc.unique(table["instrument_id"])),
        "max_updated_at": _iso(pc.max(table["updated_at"]).as_py()),
    })
    return entry


class _scratch:
    """A temporary file beside the target when the storage is a local folder (so the move is a rename)."""

    def __init__(self, storage, key):
        try:
            folder = os.path.dirname(storage.path(key))
            os.makedirs(folder, exist_ok=True)
        except NotImplementedError:
            folder = None
        handle, self.path = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
        os.close(handle)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if os.path.exists(self.path):
            os.unlink(self.path)


class _OnDisk(File):
    # FileSystemStorage moves a file that says where it is (os.rename: readers never see half a file);
    # S3Storage uploads it like any other file.
    def temporary_file_path(self):
        return self.file.name


def _save(storage, key, path):
    with open(path, "rb") as handle:
        saved = storage.save(key, _OnDisk(handle, name=key))
    if saved != key:
        storage.delete(saved)
        raise PanelError(
            f"{type(storage).__name__} saved {key} as {saved}: set allow_overwrite (FileSystemStorage) or "
            "file_overwrite (S3Storage) in STORAGES['marketdata'] so panels replace their object (BR-27)")


def _write_manifest(storage, exchange, files, symbols):
    manifest = {
        "schema": SCHEMA_VERSION,
        "exchange": exchange,
        "written_at": _iso(dt.datetime.now(dt.UTC)),
        "instruments": {str(pk): symbol for pk, symbol in sorted(symbols.items())},
        "reused": {str(pk): day.isoformat() for pk, day in sorted(PriceBar.objects.reused_codes(exchange).items())},
        "files": {year: files[year] for year in sorted(files, key=int)},
    }
    key = manifest_key(exchange)
    with _scratch(storage, key) as path:
        with open(path, "w") as handle:
            json.dump(manifest, handle, indent=1)
        _save(storage, key, path)


def read_manifest(exchange, *, storage=None) -> dict | None:
    """The exchange's manifest, or None when it has no panels (or panels of an older schema)."""
    storage = storage or storages["marketdata"]
    key = manifest_key(exchange)
    if not storage.exists(key):
        return None
    with storage.open(key, "rb") as handle:
        manifest = json.load(handle)
    return manifest if manifest.get("schema") == SCHEMA_VERSION else None


# --- the loader ------------------------------------------------------------------------------------------

def load_panel(*, field: str = "adj_close", exchange: str | None = None, instrument_ids=None, symbols=None,
               start: dt.date | None = None, end: dt.date | None = None,
               include_quarantined: bool = False, check: bool = True) -> pd.DataFrame:
    """One field of the daily bars as a wide panel: the one way analytics get prices.

    field: open, high, low, close, volume, adj_factor, or adj_open/adj_high/adj_low/adj_close (the raw
    price x adj_factor). Returns a DataFrame indexed by date (DatetimeIndex, midnight, the exchange's
    calendar day; every date that has a bar of a selected instrument in [start, end]), one float64
    column per instrument keyed 'XNYS:AAPL' and sorted by key, NaN where the instrument has no bar or
    the value is missing. Quarantined bars count as missing unless include_quarantined, and so do the
    bars of a reused code's earlier company (before the cut in PriceBar.objects.reused_codes). With
    instrument_ids or symbols ('AAPL', 'XNYS:AAPL') the columns are exactly those instruments.
    Raises PanelsMissing / PanelsStale when the panels lag the database (a pass over the exchange's bars;
    check=False skips it, for a caller that has just refreshed them), PanelError for bad arguments.
    """
    return load_panels(fields=[field], exchange=exchange, instrument_ids=instrument_ids, symbols=symbols,
                       start=start, end=end, include_quarantined=include_quarantined, check=check)[field]


def load_panels(*, fields, exchange: str | None = None, instrument_ids=None, symbols=None,
                start: dt.date | None = None, end: dt.date | None = None,
                include_quarantined: bool = False, check: bool = True) -> dict[str, pd.DataFrame]:
    """Several fields as wide panels from one read of the files: {field: DataFrame as load_panel's}.

    Every panel has the same dates and columns. The scanner reads adjusted and raw prices and volume
    this way: one pass over the files and one freshness check instead of one per field.
    """
    fields = list(dict.fromkeys(fields))
    for field in fields:
        if field not in FIELDS:
            raise PanelError(f"unknown field {field!r} (known: {', '.join(FIELDS)})")
    needed = []
    for field in fields:
        base = field.removeprefix("adj_") if field != "adj_factor" else field
        needed += [base, "adj_factor"] if field.startswith("adj_") and base in PRICES else [base]
    table, keys, wanted = _read(columns=needed, exchange=exchange, instrument_ids=instrument_ids,
                                symbols=symbols, start=start, end=end, include_quarantined=include_quarantined,
                                check=check)
    ids = table["instrument_id"].to_numpy()
    columns = np.array(sorted(wanted, key=keys.get) if wanted is not None else
                       sorted(pc.unique(table["instrument_id"]).to_pylist(), key=keys.get), dtype=np.int64)
    # Columns in key order; map each row's instrument to its column through the sorted ids.
    by_id = np.argsort(columns)
    column = by_id[np.searchsorted(columns[by_id], ids)] if len(ids) else ids
    days = table["date"].cast(pa.int32()).to_numpy()
    if len(days):
        first = days.min()
        present = np.zeros(days.max() - first + 1, dtype=bool)
        present[days - first] = True
        dates = np.flatnonzero(present) + first
        row = (np.cumsum(present) - 1)[days - first]
    else:
        dates, row = np.array([], dtype=np.int64), days
    index = pd.DatetimeIndex(dates.astype("datetime64[D]").astype("datetime64[s]"), name="date")
    names = pd.Index([keys[pk] for pk in columns.tolist()], name="instrument")
    factor = None
    out = {}
    for field in fields:
        base = field.removeprefix("adj_") if field != "adj_factor" else field
        values = _float(table[base])
        if field.startswith("adj_") and base in PRICES:
            factor = _float(table["adj_factor"]) if factor is None else factor
            values = values * factor
        grid = np.full((len(dates), len(columns)), np.nan)
        grid[row, column] = values
        out[field] = pd.DataFrame(grid, index=index, columns=names)
    return out


def load_bars(*, exchange: str | None = None, instrument_ids=None, symbols=None, start: dt.date | None = None,
              end: dt.date | None = None, include_quarantined: bool = False, check: bool = True) -> pd.DataFrame:
    """The daily bars in long form (scanners): one row per instrument and date, sorted by key then date.

    Columns BAR_FRAME_COLUMNS: instrument_id (int64), key ('XNYS:AAPL'), exchange, symbol (categorical),
    date (datetime64, midnight), open/high/low/close (raw), volume, adj_factor, adj_open/high/low/close
    (raw x factor), all float64 with NaN = missing, flags (int32), quarantined (bool). Selection and
    errors as load_panel.
    """
    table, keys, _ = _read(columns=[*PRICES, "volume", "adj_factor", "flags", "quarantined"],
                           exchange=exchange, instrument_ids=instrument_ids, symbols=symbols, start=start,
                           end=end, include_quarantined=include_quarantined, check=check)
    ids = table["instrument_id"].to_numpy()
    # Categoricals from the few distinct instruments, never a Python string per row; sorting and the
    # adjusted prices in Arrow, which hands pandas finished columns.
    distinct = np.sort(pc.unique(table["instrument_id"]).to_numpy())
    names = sorted(keys[pk] for pk in distinct.tolist())
    rank = np.argsort(np.argsort([keys[pk] for pk in distinct.tolist()]))
    code = rank[np.searchsorted(distinct, ids)].astype(np.int32) if len(ids) else ids.astype(np.int32)
    factor = table["adj_factor"]
    table = pa.table({
        "code": code, "instrument_id": table["instrument_id"], "date": table["date"].cast(pa.timestamp("s")),
        **{name: table[name].cast(pa.float64()) for name in (*PRICES, "volume")}, "adj_factor": factor,
        **{f"adj_{p}": pc.multiply(table[p], factor) for p in PRICES},
        "flags": table["flags"], "quarantined": table["quarantined"],
    }).sort_by([("code", "ascending"), ("date", "ascending")])
    frame = table.to_pandas()
    code = frame.pop("code").to_numpy()

    def categorical(parts):
        categories, inverse = np.unique(np.array(parts, dtype=object), return_inverse=True)
        return pd.Categorical.from_codes(inverse[code] if len(code) else code, categories=list(categories))

    frame["key"] = pd.Categorical.from_codes(code, categories=names)
    frame["exchange"] = categorical([n.split(":", 1)[0] for n in names])
    frame["symbol"] = categorical([n.split(":", 1)[1] for n in names])
    return frame[BAR_FRAME_COLUMNS]


def _float(column):
    return pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy()


def _read(*, columns, exchange, instrument_ids, symbols, start, end, include_quarantined, check):
    """(table of the selected rows, {instrument_id: key}, the requested instrument ids or None)."""
    storage = storages["marketdata"]
    if exchange is not None and exchange not in Exchange.values:
        raise PanelError(f"unknown exchange {exchange!r} (known: {', '.join(Exchange.values)})")
    if start and end and start > end:
        raise PanelError(f"start {start} is after end {end}")
    names = [exchange] if exchange is not None else Exchange.values
    every = {name: read_manifest(name, storage=storage) for name in names}
    manifests = {name: manifest for name, manifest in every.items() if manifest}
    keys = {int(pk): f"{name}:{symbol}" for name, manifest in manifests.items()
            for pk, symbol in manifest["instruments"].items()}
    try:
        wanted = _wanted(manifests, keys, instrument_ids, symbols)
    except PanelError:
        _check_fresh(every)  # "no panels" or "stale" explains an unknown symbol better
        raise
    if wanted is not None:
        manifests = {name: m for name, m in manifests.items() if any(str(pk) in m["instruments"] for pk in wanted)}
    filters = []
    if start:
        filters.append(("date", ">=", start))
    if end:
        filters.append(("date", "<=", end))
    if wanted is not None:
        filters.append(("instrument_id", "in", sorted(wanted)))
    if not include_quarantined:
        filters.append(("quarantined", "==", False))
    keys_to_read = [entry["key"] for manifest in manifests.values() for year, entry in manifest["files"].items()
                    if (not start or int(year) >= start.year) and (not end or int(year) <= end.year)]
    read_columns = ["instrument_id", "date", *dict.fromkeys(columns)]

    def read(key):
        try:
            source = storage.path(key)
        except NotImplementedError:
            with storage.open(key, "rb") as handle:
                return pq.read_table(handle, columns=read_columns, filters=filters or None)
        return pq.read_table(source, columns=read_columns, filters=filters or None)

    # The files are read in threads while this thread asks the database whether they are current
    # (Django's connection belongs to this thread); the two take about as long as each other.
    with ThreadPoolExecutor(max_workers=max(1, min(READ_THREADS, len(keys_to_read)))) as pool:
        parts = [pool.submit(read, key) for key in keys_to_read]
        try:
            if check:
                # With a selection, only the exchanges it reads from: a stale XASX does not stop a US read.
                _check_fresh(every if wanted is None else {name: every[name] for name in manifests})
        except PanelError:
            for part in parts:
                part.cancel()
            raise
        parts = [part.result() for part in parts]
    table = pa.concat_tables(parts) if parts else SCHEMA.empty_table().select(read_columns)
    if not include_quarantined:
        table = _after_reuse(table, manifests)
    return table, keys, wanted


def _after_reuse(table, manifests):
    """The rows less those of a reused code's earlier company (dated before its cut: PriceBar.objects.reused_codes)."""
    cuts = {int(pk): day for manifest in manifests.values() for pk, day in manifest.get("reused", {}).items()}
    if not cuts or not table.num_rows:
        return table
    ids = np.array(sorted(cuts), dtype=np.int64)
    days = np.array([np.datetime64(cuts[pk], "D").astype(np.int64) for pk in ids.tolist()], dtype=np.int64)
    row_ids = table["instrument_id"].to_numpy()
    at = np.clip(np.searchsorted(ids, row_ids), 0, len(ids) - 1)
    cut = np.where(ids[at] == row_ids, days[at], np.iinfo(np.int64).min)
    keep = table["date"].cast(pa.int32()).to_numpy().astype(np.int64) >= cut
    return table if keep.all() else table.filter(pa.array(keep))


def _wanted(manifests, keys, instrument_ids, symbols):
    """The instrument ids asked for (by id or symbol), or None for every instrument; unknown ones raise."""
    if instrument_ids is None and symbols is None:
        return None
    wanted = []
    for pk in instrument_ids or []:
        if int(pk) not in keys:
            raise PanelError(f"instrument {pk} is not in the panels of {', '.join(manifests) or 'any exchange'}")
        wanted.append(int(pk))
    by_symbol = {}
    for pk, key in keys.items():
        name, symbol = key.split(":", 1)
        by_symbol.setdefault(symbol, []).append((name, pk))
    for text in symbols or []:
        try:
            symbol, on = parse_symbol(text)
        except SymbolError as exc:
            raise PanelError(str(exc)) from exc
        found = [pk for name, pk in by_symbol.get(symbol, []) if on in (None, name)]
        if not found:
            where = on or ", ".join(manifests) or "any exchange"
            raise PanelError(f"symbol {text!r} is not in the panels of {where}")
        if len(found) > 1:
            raise PanelError(f"symbol {text!r} is listed on several exchanges; say which, e.g. XASX:{symbol}")
        wanted.append(found[0])
    return list(dict.fromkeys(wanted))


def _check_fresh(manifests):
    """Raise PanelsMissing / PanelsStale when the database holds bars that {exchange: manifest or None} lack."""
    for name, manifest in manifests.items():
        # A full pass over the exchange's bars (no index on updated_at): about as long as reading the panel.
        held = PriceBar.objects.order_by().filter(
            instrument_id__in=Instrument.objects.filter(exchange=name).values("id"),
        ).aggregate(bars=Count("id"), newest=Max("updated_at"))
        held = held if held["bars"] else None
        if manifest is None:
            if held:
                raise PanelsMissing(f"{name}: {held['bars']:,} bars in the database but no panels; "
                                    f"run `manage.py panels --exchange {name}`")
            continue
        files = manifest["files"].values()
        rows = sum(entry["rows"] for entry in files)
        newest = max((entry["max_updated_at"] for entry in files), default=None)
        if held is None and rows:
            raise PanelsStale(f"{name}: the panels hold {rows:,} bars but the database none; "
                              f"run `manage.py panels --exchange {name}`")
        if held and (held["bars"] != rows or _iso(held["newest"]) != newest):
            raise PanelsStale(
                f"{name}: the panels hold {rows:,} bars updated up to {newest}, the database {held['bars']:,} "
                f"bars updated up to {_iso(held['newest'])}; run `manage.py panels --exchange {name}`")


def _iso(moment):
    """An aware datetime as ISO 8601 UTC with microseconds, the manifest's one spelling of a moment."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds") if moment else None


def _day(value):
    return value.isoformat() if value else None


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
