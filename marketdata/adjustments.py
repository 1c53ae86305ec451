"""Corporate actions: store splits and dividends, and derive PriceBar.adj_factor from them.

The rule: an instrument with stored actions gets every bar's adj_factor from them
(quant.adjust.adjustment_factors); an instrument without actions keeps the factor its source gave
(the vendor's adjusted close, or 1.0). The factor is derived data, so it is recomputed for every bar,
reviewed ones too: a person fixes raw prices, never the factor.

Split ratios pass through quant.adjust.snap_ratio before they are stored (7.000007 is stored as 7);
dividends are stored to 6 decimals, as the column holds them.
"""
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from quant.adjust import adjustment_factors, snap_ratio

from . import bulk
from .errors import IngestError
from .models import CorporateAction, Exchange, Instrument, IngestRun, PriceBar
from .sources import _Checker

logger = logging.getLogger(__name__)

# The actions frame every producer hands over (providers, files, the bar frames' action columns).
ACTION_COLUMNS = ["symbol", "exchange", "kind", "ex_date", "ratio", "amount"]
KINDS = tuple(CorporateAction.Kind.values)
ID_CHUNK = 500  # instrument ids per IN (...) list, well inside SQLite's parameter limit
RECOMPUTE_CHUNK = 100  # instruments whose bars are read back at a time
FILE_ALIASES = {
    "symbol": "symbol", "ticker": "symbol", "code": "symbol",
    "date": "date", "ex_date": "date",
    "dividend_amount": "dividend", "dividend": "dividend",
    "split_coefficient": "split_ratio", "split_ratio": "split_ratio",
    "exchange": "exchange", "mic": "exchange",
}
FILE_REQUIRED = ("symbol", "date", "dividend", "split_ratio")


@dataclass(frozen=True)
class ActionsStored:
    """What saving a batch of actions did; `changed_ids` are the instruments whose factors must be recomputed."""

    received: int = 0
    instruments: int = 0  # known instruments the actions were for
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown: tuple = ()  # "XNYS:KSU" keys without an instrument: nothing stored for them
    # Instruments with a new or changed action dated after their first stored bar: only their factors move.
    changed_ids: frozenset = field(default_factory=frozenset)

    @property
    def stored(self):
        return self.inserted + self.updated


@dataclass
class FactorPlan:
    """Between store_bars' two steps: which instruments took factors from actions, and what they held."""

    ids: np.ndarray  # instruments of the frame that have actions
    frame_rows: np.ndarray  # the frame's bars per instrument, aligned with ids
    frame_first: np.ndarray  # the frame's first date per instrument (datetime64[D])
    last_stored: dict  # {id: last stored date before the upsert}
    latest_ex_date: dict  # {id: latest ex-date of its actions}
    changed_ids: frozenset
    warnings: list
    actions: int = 0  # actions new or changed


def store_actions(*, actions: pd.DataFrame, source: str) -> int:
    """Upsert splits and dividends and recompute the factors of the instruments whose actions changed.

    actions: DataFrame of ACTION_COLUMNS (kind 'split' with ratio > 0, 'dividend' with amount >= 0;
    ex_date datetime64). One row per (instrument, kind, ex_date): of repeats the last wins. Symbols
    without an instrument are logged and skipped, never created. Returns the number of actions new
    or changed; raises IngestError naming the symbol and ex-date of a malformed action.
    """
    with transaction.atomic():
        result = save_actions(actions=actions, source=source)
        recompute_factors(sorted(result.changed_ids))
    if result.unknown:
        logger.warning("corporate actions for unknown instruments not stored: %s", ", ".join(result.unknown))
    return result.stored


def save_actions(*, actions: pd.DataFrame, source: str) -> ActionsStored:
    """Upsert actions (see store_actions) without recomputing any factor; the caller does that.

    An `instrument_id` column, when present, is used instead of resolving symbol and exchange.
    """
    frame = _normalise_actions(actions)
    if not len(frame):
        return ActionsStored()
    if "instrument_id" in frame:
        unknown = ()
    else:
        frame, unknown = _with_instrument_ids(frame)
    frame = frame.drop_duplicates(["instrument_id", "kind", "ex_date"], keep="last").reset_index(drop=True)
    existing = _stored_actions(frame["instrument_id"].unique().tolist())
    merged = frame.merge(existing, how="left", on=["instrument_id", "kind", "ex_date"], suffixes=("", "_stored"))
    is_new = merged["id"].isna().to_numpy()
    split = (merged["kind"] == "split").to_numpy()
    with np.errstate(invalid="ignore"):
        ratio_moved = split & ~np.isclose(merged["ratio"], merged["ratio_stored"], rtol=1e-12, atol=0)
    amount_moved = ~split & ~np.isclose(merged["amount"], merged["amount_stored"], rtol=0, atol=5e-7)
    write = is_new | ratio_moved | amount_moved
    rows = merged[write]
    if len(rows):
        _upsert_actions(rows, source)
    return ActionsStored(
        received=len(actions), instruments=int(frame["instrument_id"].nunique()), inserted=int(is_new.sum()),
        updated=int((write & ~is_new).sum()), unchanged=int((~write).sum()), unknown=tuple(unknown),
        changed_ids=_affected(rows, had_actions=set(existing["instrument_id"].tolist())),
    )


def _affected(rows, *, had_actions):
    """Instruments with bars among the written actions' whose factors may move.

    That is an instrument's first actions (its factors stop being the source's), or an action dated
    after its first stored bar. Further actions on or before the first bar change no factor (a history
    imported from 1999 for bars from 2007), so those instruments need no recompute.
    """
    latest = rows.groupby("instrument_id")["ex_date"].max()
    first = {}
    for chunk in _chunks([int(i) for i in latest.index]):
        first.update(PriceBar.objects.filter(instrument_id__in=chunk).order_by().values_list("instrument_id")
                     .annotate(first=Min("date")))
    return frozenset(int(i) for i, ex_date in latest.items()
                     if i in first and (i not in had_actions or ex_date.date() > first[i]))


def _upsert_actions(rows, source):
    """INSERT ... ON CONFLICT (instrument, kind, ex_date) DO UPDATE of new and changed actions, in bulk.

    One statement over arrays on PostgreSQL, executemany on SQLite: a backfill brings ~20,000 actions,
    and model instances would cost seconds.
    """
    table = CorporateAction._meta.db_table
    now = timezone.now()
    ids = rows["instrument_id"].astype(int).tolist()
    kinds = rows["kind"].tolist()
    days = np.datetime_as_string(rows["ex_date"].to_numpy(dtype="datetime64[D]"), unit="D").tolist()
    ratios = [None if np.isnan(r) else float(r) for r in rows["ratio"].tolist()]
    amounts = [None if np.isnan(a) else f"{a:.6f}" for a in rows["amount"].tolist()]
    update = ("ratio = excluded.ratio, amount = excluded.amount, source = excluded.source, "
              "updated_at = excluded.updated_at")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (instrument_id, kind, ex_date, ratio, amount, source, created_at, updated_at) "
                "SELECT i, k, d, r, a, %s, %s, %s FROM unnest(%s::bigint[], %s::text[], %s::date[], "
                "%s::float8[], %s::numeric[]) AS u(i, k, d, r, a) "
                f"ON CONFLICT (instrument_id, kind, ex_date) DO UPDATE SET {update}",
                [source, now, now, ids, kinds, days, ratios, amounts],
            )
            return
        stamp = connection.ops.adapt_datetimefield_value(now)
        cursor.executemany(
            f"INSERT INTO {table} (instrument_id, kind, ex_date, ratio, amount, source, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (instrument_id, kind, ex_date) DO UPDATE SET {update}",
            [(i, k, d, r, a, source, stamp, stamp) for i, k, d, r, a in zip(ids, kinds, days, ratios, amounts)],
        )


def recompute_factors(instrument_ids) -> int:
    """Rewrite adj_factor of every bar of these instruments that have actions; return the bars changed.

    Instruments without actions are left alone (their source's factors stand). Bars whose factor did
    not move (to 1e-12, relative) are not written; changed ones get a new updated_at.
    """
    ids = sorted({int(i) for i in instrument_ids})
    updated = 0
    for start in range(0, len(ids), RECOMPUTE_CHUNK):
        chunk = ids[start:start + RECOMPUTE_CHUNK]
        actions = _actions_frame(chunk)
        if not len(actions):
            continue
        bars = _stored_bars(sorted(actions["key"].unique().tolist()))
        if not len(bars):
            continue
        result = adjustment_factors(bars, actions)
        _warn(result.skipped)
        old = bars["adj_factor"].to_numpy()
        moved = np.abs(result.factor - old) > 1e-12 * np.abs(old)
        updated += _write_factors(bars["id"].to_numpy()[moved], result.factor[moved])
    return updated


def bar_actions(bars: pd.DataFrame) -> pd.DataFrame:
    """The actions a normalised bar frame carries in its optional `dividend` / `split_ratio` columns.

    A dividend where dividend != 0, a split where split_ratio != 1, dated on the bar's date; with the
    frame's instrument_id when it has one. Empty (ACTION_COLUMNS) when the frame has neither column.
    """
    parts = []
    keep = [c for c in ("symbol", "exchange", "instrument_id") if c in bars]
    if "dividend" in bars:
        paid = bars["dividend"].to_numpy() != 0
        if paid.any():
            part = bars.loc[paid, keep + ["date", "dividend"]].rename(columns={"date": "ex_date", "dividend": "amount"})
            parts.append(part.assign(kind="dividend", ratio=np.nan))
    if "split_ratio" in bars:
        split = bars["split_ratio"].to_numpy() != 1
        if split.any():
            part = bars.loc[split, keep + ["date", "split_ratio"]].rename(columns={"date": "ex_date",
                                                                                    "split_ratio": "ratio"})
            parts.append(part.assign(kind="split", amount=np.nan))
    if not parts:
        return pd.DataFrame(columns=ACTION_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    for column in ("symbol", "exchange"):
        if column in out:
            out[column] = out[column].astype(str)
    return out


def prepare_factors(bars: pd.DataFrame, *, actions: pd.DataFrame | None, source: str) -> FactorPlan:
    """store_bars, before the upsert: save the actions and set adj_factor of bars whose instrument has any.

    bars: the frame about to be upserted, with instrument_id, date, close (after flagging); its
    adj_factor column is replaced in place for instruments with stored or incoming actions. The
    previous closes come from the frame itself, so a backfill writes its factors in one pass;
    finish_factors then recomputes from the database the few instruments where that was not enough.
    """
    changed = frozenset()
    warnings = []
    stored_count = 0
    if actions is not None and len(actions):
        saved = save_actions(actions=actions, source=source)
        changed, stored_count = saved.changed_ids, saved.stored
        warnings += [f"{key}: no instrument, its corporate actions were not stored" for key in saved.unknown]
    ids = np.unique(bars["instrument_id"].to_numpy())
    stored = _actions_frame(ids.tolist())
    plan = FactorPlan(ids=np.array([], dtype=np.int64), frame_rows=np.array([], dtype=np.int64),
                      frame_first=np.array([], dtype="datetime64[D]"), last_stored={}, latest_ex_date={},
                      changed_ids=changed, warnings=warnings, actions=stored_count)
    if not len(stored):
        return plan
    with_actions = np.unique(stored["key"].to_numpy())
    rows = np.isin(bars["instrument_id"].to_numpy(), with_actions)
    frame = pd.DataFrame({"key": bars["instrument_id"].to_numpy()[rows], "date": bars["date"].to_numpy()[rows],
                          "close": bars["close"].to_numpy(dtype="float64", na_value=np.nan)[rows]})
    result = adjustment_factors(frame, stored)
    warnings += _warn(result.skipped)
    factor = bars["adj_factor"].to_numpy(dtype="float64", copy=True)
    factor[rows] = result.factor
    bars["adj_factor"] = factor
    grouped = frame.groupby("key", sort=True)["date"]
    plan.ids = grouped.size().index.to_numpy(dtype=np.int64)
    plan.frame_rows = grouped.size().to_numpy()
    plan.frame_first = grouped.min().to_numpy(dtype="datetime64[D]")
    plan.latest_ex_date = stored.groupby("key")["ex_date"].max().dt.date.to_dict()
    for chunk in _chunks(plan.ids.tolist()):
        plan.last_stored.update(PriceBar.objects.filter(instrument_id__in=chunk).order_by()
                                .values_list("instrument_id").annotate(last=Max("date")))
    return plan


def finish_factors(plan: FactorPlan) -> int:
    """store_bars, after the upsert: recompute from the database the instruments the frame could not settle.

    That is an instrument with bars outside the frame (or reviewed bars, which the upsert does not
    touch) when its actions changed, when the frame overlaps its stored bars, or when an action lies
    after its last stored bar. Appending the next sessions of an instrument whose actions did not
    change recomputes nothing. Returns the bars whose factor changed.
    """
    if not len(plan.ids):
        return 0
    counts = {}
    for chunk in _chunks(plan.ids.tolist()):
        counts.update({i: (n, r) for i, n, r in PriceBar.objects.filter(instrument_id__in=chunk).order_by()
                       .values_list("instrument_id").annotate(n=Count("id"), r=Count("id", filter=Q(reviewed=True)))
                       .values_list("instrument_id", "n", "r")})
    again = []
    for i, rows, first in zip(plan.ids.tolist(), plan.frame_rows.tolist(), plan.frame_first.tolist()):
        total, reviewed = counts.get(i, (0, 0))
        if total <= rows and not reviewed:
            continue  # the frame is the whole series: its factors are exact
        last = plan.last_stored.get(i)
        appended = last is not None and first > last
        if i in plan.changed_ids or not appended or plan.latest_ex_date.get(i, dt.date.min) > last:
            again.append(i)
    return recompute_factors(again)


def import_actions(*, path, exchange: str = "XNYS", source: str = "file", requested_by=None) -> IngestRun:
    """Load a corporate-actions CSV (ticker, date, dividend_amount, split_coefficient) and record the run.

    A row becomes a dividend where dividend_amount != 0 and a split where split_coefficient != 1.
    Everything is validated first and written in one transaction, with the adjusted series of every
    instrument whose actions changed; re-running the same file changes nothing. Symbols without an
    instrument on `exchange` are named in the run's errors (status partial). Raises IngestError
    (after recording the run as failed) for bad input. The returned run carries `.result` (ActionsStored)
    and `.factors_recomputed` (bars whose adj_factor moved).
    """
    run = IngestRun.objects.create(kind=IngestRun.Kind.ACTIONS, provider=source, exchange=exchange,
                                   params={"path": str(path), "exchange": exchange}, requested_by=requested_by)
    try:
        actions, rows = read_actions(path, exchange=exchange)
        run.rows_read = rows
        with transaction.atomic():
            saved = save_actions(actions=actions, source=source)
            recomputed = recompute_factors(sorted(saved.changed_ids))
    except Exception as exc:
        run.status = IngestRun.Status.FAILED
        run.errors = [str(exc) or type(exc).__name__]
        run.finished_at = timezone.now()
        run.save()
        if isinstance(exc, DatabaseError):
            raise IngestError(f"the database refused the actions: {exc}", file=Path(path).name) from exc
        raise
    name = Path(path).name
    run.errors = [f"{key}: no such instrument, its actions in {name} were not stored" for key in saved.unknown]
    run.status = IngestRun.Status.PARTIAL if saved.unknown else IngestRun.Status.SUCCESS
    run.symbols = saved.instruments
    run.rows_inserted, run.rows_updated, run.rows_unchanged = saved.inserted, saved.updated, saved.unchanged
    run.finished_at = timezone.now()
    run.save()
    run.result, run.factors_recomputed = saved, recomputed
    return run


def read_actions(path, *, exchange: str = "XNYS"):
    """(actions frame of ACTION_COLUMNS, rows read) from a corporate-actions CSV, optionally gzipped.

    Raises IngestError naming the file, row (the header is row 1) and column of the first problem.
    """
    path = Path(path)
    label = path.name
    if not path.is_file():
        raise IngestError("no such file", file=str(path))
    if exchange not in Exchange.values:
        raise IngestError(f"unknown exchange {exchange!r} (known: {', '.join(Exchange.values)})", file=label)
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except UnicodeDecodeError:
        raise IngestError("not a UTF-8 text file", file=label) from None
    except pd.errors.EmptyDataError:
        raise IngestError("the file is empty", file=label) from None
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as exc:
        raise IngestError(f"cannot be read as CSV: {exc}", file=label) from None
    labels = {}
    for header in raw.columns:
        name = FILE_ALIASES.get(str(header).strip().lower().replace(" ", "_").replace("-", "_"))
        if name is None:
            continue
        if name in labels:
            raise IngestError(f'columns "{labels[name]}" and "{header}" both mean {name}', file=label)
        labels[name] = header
    missing = [name for name in FILE_REQUIRED if name not in labels]
    if missing:
        found = ", ".join(f'"{h}"' for h in raw.columns) or "none"
        raise IngestError(f'missing column "{missing[0]}" (columns found: {found})', file=label)
    check = _Checker(label, 2, labels)
    symbol = np.asarray(check.text(raw[labels["symbol"]], "symbol", required=True, upper=True), dtype=object)
    if "exchange" in labels:
        given = np.asarray(check.text(raw[labels["exchange"]], "exchange", upper=True), dtype=object)
        venues = np.where(given == "", exchange, given)
        check.first(~np.isin(venues, Exchange.values), "exchange",
                    lambda v: f"{v!r} is not a known exchange (known: {', '.join(Exchange.values)})",
                    raw[labels["exchange"]])
    else:
        venues = np.full(len(raw), exchange, dtype=object)
    dates = check.dates(raw[labels["date"]], "date")
    dividend = check.numbers(raw[labels["dividend"]], "dividend")
    ratio = check.numbers(raw[labels["split_ratio"]], "split_ratio")
    with np.errstate(invalid="ignore"):
        check.first(dividend < 0, "dividend", lambda v: f"{v!r} is not a dividend (negative)", raw[labels["dividend"]])
        check.first(ratio <= 0, "split_ratio", lambda v: f"{v!r} is not a split ratio (must be positive)",
                    raw[labels["split_ratio"]])
    frame = pd.DataFrame({"symbol": symbol, "exchange": venues, "date": dates,
                          "dividend": np.nan_to_num(dividend, nan=0.0), "split_ratio": np.nan_to_num(ratio, nan=1.0)})
    return bar_actions(frame), len(raw)


def _normalise_actions(actions):
    """Validated copy of an actions frame: kinds known, values present and positive, ratios snapped."""
    missing = [c for c in ("kind", "ex_date") if c not in actions]
    if "instrument_id" not in actions:
        missing += [c for c in ("symbol", "exchange") if c not in actions]
    if missing:
        raise IngestError(f"corporate actions lack column {missing[0]!r}")
    frame = actions.reset_index(drop=True).copy()
    frame["ex_date"] = pd.to_datetime(frame["ex_date"]).astype("datetime64[s]")
    frame["kind"] = frame["kind"].astype(str)
    for column in ("ratio", "amount"):
        frame[column] = (pd.to_numeric(frame[column], errors="coerce").astype("float64") if column in frame
                         else np.nan)
    split = (frame["kind"] == "split").to_numpy()
    dividend = (frame["kind"] == "dividend").to_numpy()
    ratio, amount = frame["ratio"].to_numpy(), frame["amount"].to_numpy()
    with np.errstate(invalid="ignore"):
        bad = (~split & ~dividend) | (split & ~(ratio > 0)) | (dividend & ~(amount >= 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        row = frame.iloc[i]
        who = row["symbol"] if "symbol" in frame else f"instrument {row['instrument_id']}"
        if row["kind"] not in KINDS:
            problem = f"kind {row['kind']!r} is not one of {', '.join(KINDS)}"
        elif split[i]:
            problem = f"split ratio {row['ratio']!r} is not a positive number"
        else:
            problem = f"dividend {row['amount']!r} is not a number of at least 0"
        raise IngestError(f"{who} {row['ex_date']:%Y-%m-%d}: {problem}")
    frame["ratio"] = np.where(split, snap_ratio(ratio), np.nan)
    # The column holds 6 decimals: compare and store what it will keep.
    frame["amount"] = np.where(dividend, np.round(amount, 6), np.nan)
    if "symbol" in frame:
        frame["symbol"] = frame["symbol"].astype(str).str.strip().str.upper()
        frame["exchange"] = frame["exchange"].astype(str).str.strip().str.upper()
    return frame


def _with_instrument_ids(frame):
    """The frame with instrument_id, less rows of unknown instruments; and those instruments' keys."""
    key = list(zip(frame["symbol"], frame["exchange"]))
    ids = {k: pk for k, (pk, _) in Instrument.objects.listings(key).items()}
    found = np.array([ids.get(k, -1) for k in key], dtype=np.int64)
    unknown = sorted({f"{exchange}:{symbol}" for (symbol, exchange), i in zip(key, found.tolist()) if i < 0})
    frame = frame[found >= 0].copy()
    frame["instrument_id"] = found[found >= 0]
    return frame, unknown


def _stored_actions(ids):
    """The stored actions of these instruments as (id, instrument_id, kind, ex_date, ratio_stored, amount_stored)."""
    rows = []
    for chunk in _chunks(ids):
        rows += CorporateAction.objects.filter(instrument_id__in=chunk).values_list(
            "id", "instrument_id", "kind", "ex_date", "ratio", "amount")
    frame = pd.DataFrame(rows, columns=["id", "instrument_id", "kind", "ex_date", "ratio", "amount"])
    return pd.DataFrame({
        "id": frame["id"].astype("float64"),
        "instrument_id": frame["instrument_id"].astype(np.int64),
        "kind": frame["kind"].astype(str),
        "ex_date": pd.to_datetime(frame["ex_date"]).astype("datetime64[s]"),
        "ratio_stored": pd.to_numeric(frame["ratio"], errors="coerce").astype("float64"),
        "amount_stored": np.round(frame["amount"].to_numpy(dtype="float64", na_value=np.nan), 6),
    })


def _actions_frame(ids):
    """Stored actions of these instruments in quant.adjust's form: key (instrument id), ex_date, ratio, amount."""
    stored = _stored_actions(ids)
    return pd.DataFrame({"key": stored["instrument_id"], "ex_date": stored["ex_date"],
                         "ratio": stored["ratio_stored"], "amount": stored["amount_stored"]})


def _stored_bars(ids):
    """id, key (instrument id), date, close, adj_factor of every stored bar of these instruments.

    Read without a Python object per value where possible: on PostgreSQL the server packs the rows
    into one bytea (a missing close as NaN, so every row has the same width) that numpy reads as it is;
    on SQLite, integer day numbers.
    """
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT string_agg(int8send(id) || int8send(instrument_id) "
                "|| int4send((date - DATE '1970-01-01')::int4) || float8send(COALESCE(close, 'NaN'::float8)) || float8send(adj_factor), ''::bytea) "
                f"FROM {bulk.TABLE} WHERE instrument_id IN ({placeholders})", ids)
            data = cursor.fetchone()[0] or b""
            rows = np.frombuffer(bytes(data), dtype=_PG_BAR_ROW)
            pk, key, day = rows["id"], rows["instrument_id"], rows["day"]
            close, factor = rows["close"], rows["adj_factor"]
        else:
            cursor.execute(f"SELECT id, instrument_id, CAST(julianday(date) - 2440587.5 AS INTEGER), close, "
                           f"adj_factor FROM {bulk.TABLE} WHERE instrument_id IN ({placeholders})", ids)
            found = cursor.fetchall()
            pk, key, day, close, factor = zip(*found) if found else ((),) * 5
            close = [np.nan if c is None else c for c in close]
    return pd.DataFrame({
        "id": np.asarray(pk, dtype=np.int64), "key": np.asarray(key, dtype=np.int64),
        "date": np.asarray(day, dtype=np.int64).astype("datetime64[D]").astype("datetime64[s]"),
        "close": np.asarray(close, dtype="float64"), "adj_factor": np.asarray(factor, dtype="float64"),
    })


_PG_BAR_ROW = np.dtype([("id", ">i8"), ("instrument_id", ">i8"), ("day", ">i4"), ("close", ">f8"),
                        ("adj_factor", ">f8")])
_PG_FACTOR_ROW = np.dtype([("count", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("f_len", ">i4"), ("f", ">f8")])


def _write_factors(ids, factors):
    """Set adj_factor (and updated_at) of bars by id, in bulk; returns the rows written."""
    if not len(ids):
        return 0
    now = timezone.now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            rows = np.empty(len(ids), dtype=_PG_FACTOR_ROW)
            rows["count"], rows["id_len"], rows["f_len"] = 2, 8, 8
            rows["id"], rows["f"] = ids, factors
            cursor.execute("DROP TABLE IF EXISTS pg_temp.parakeet_stage_factors")
            cursor.execute("CREATE TEMP TABLE parakeet_stage_factors (id bigint, adj_factor float8) ON COMMIT DROP")
            copy_in = "COPY pg_temp.parakeet_stage_factors (id, adj_factor) FROM STDIN WITH (FORMAT binary)"
            with cursor.cursor.copy(copy_in) as copy:
                copy.write(bulk._PG_SIGNATURE + rows.tobytes() + bulk._PG_TRAILER)
            cursor.execute(f"UPDATE {bulk.TABLE} AS p SET adj_factor = s.adj_factor, updated_at = %s "
                           "FROM pg_temp.parakeet_stage_factors AS s WHERE p.id = s.id", [now])
            written = cursor.rowcount
            cursor.execute("DROP TABLE pg_temp.parakeet_stage_factors")
            return written
        stamp = connection.ops.adapt_datetimefield_value(now)
        cursor.executemany(f"UPDATE {bulk.TABLE} SET adj_factor = %s, updated_at = %s WHERE id = %s",
                           zip(factors.tolist(), [stamp] * len(ids), ids.tolist()))
        return len(ids)


def _warn(skipped):
    """Log the dividends quant.adjust could not convert; return the messages."""
    if not len(skipped):
        return []
    symbols = dict(Instrument.objects.filter(pk__in=[int(k) for k in skipped["key"].unique()])
                   .values_list("pk", "symbol"))
    messages = [f"{symbols.get(int(k), k)} {d:%Y-%m-%d}: dividend {a:g} not applied ({r}, close {p:g})"
                for k, d, a, p, r in skipped[["key", "ex_date", "amount", "previous_close", "reason"]].itertuples(
                    index=False)]
    for message in messages:
        logger.warning(message)
    return messages


def _chunks(values):
    for start in range(0, len(values), ID_CHUNK):
        yield values[start:start + ID_CHUNK]
