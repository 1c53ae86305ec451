"""The quality checks of an ingest that need the database: series checks with each instrument's stored tail.

services._flag runs quant.quality.check_bars on every bar, then `check_with_history` here: the series
checks (quant.quality.check_series) over the new bars plus the last SERIES_TAIL stored bars of each
instrument, so a one-day ingest still sees the jump from yesterday's stored close, with the ex-dates of
stored and incoming corporate actions as explanations. Stored bars whose series flags the new bars change
(a flip undone today marks the excursion stored last week) are restated in the ingest's transaction.
"""
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from quant.quality import (
    FLAG_LABELS, FLIP_WINDOW, QUARANTINE_MASK, SERIES_FLAGS, check_series, session_gaps,
)

from . import calendars
from .models import CorporateAction, Instrument, PriceBar

# Of the stored bars before each instrument's first new bar, the newest RESTATE may be restated (a flip
# undone by a new bar reaches back FLIP_WINDOW bars); a bar's flip status depends on a move up to
# FLIP_WINDOW bars before it, so that many more (and the bar before those) are read as context.
RESTATE = FLIP_WINDOW
SERIES_TAIL = RESTATE + FLIP_WINDOW + 2
INSTRUMENT_CHUNK = 200  # per-instrument conditions per query (SQLite's expression depth)
WORST_GAPS = 10


@dataclass(frozen=True)
class QualitySummary:
    """An ingest's quality record (IngestRun.params["quality"]); two summaries add up (a run in parts)."""

    duplicates: int = 0  # rows dropped because a later row had the same (symbol, exchange, date)
    missing_sessions: int = 0  # sessions without a bar inside the instruments' spans (new bars' stretch)
    instruments_with_gaps: int = 0
    worst_gaps: tuple = ()  # the WORST_GAPS longest: {symbol, exchange, start, end, sessions}
    series_flags: tuple = ()  # (label, bars) for jumps, stale runs, flips, reused codes among the new bars
    stored_bars_restated: int = 0  # stored bars whose series flags the new bars changed
    dropped_skipped: int = 0  # rows not written because a reviewer dropped that bar (bulk.upsert_bars)

    def __add__(self, other):
        gaps = sorted(self.worst_gaps + other.worst_gaps, key=lambda g: (-g["sessions"], g["start"]))
        counts = dict(self.series_flags)
        for label, n in other.series_flags:
            counts[label] = counts.get(label, 0) + n
        return QualitySummary(
            duplicates=self.duplicates + other.duplicates,
            missing_sessions=self.missing_sessions + other.missing_sessions,
            instruments_with_gaps=self.instruments_with_gaps + other.instruments_with_gaps,
            worst_gaps=tuple(gaps[:WORST_GAPS]), series_flags=tuple(counts.items()),
            stored_bars_restated=self.stored_bars_restated + other.stored_bars_restated,
            dropped_skipped=self.dropped_skipped + other.dropped_skipped,
        )

    def as_dict(self):
        return {"duplicates": self.duplicates, "missing_sessions": self.missing_sessions,
                "instruments_with_gaps": self.instruments_with_gaps, "worst_gaps": list(self.worst_gaps),
                "series_flags": dict(self.series_flags), "stored_bars_restated": self.stored_bars_restated,
                "dropped_skipped": self.dropped_skipped}


@dataclass
class History:
    """What check_with_history found besides the new bars' flags."""

    restate: list = field(default_factory=list)  # PriceBar(pk, flags, quarantined) to write
    summary: QualitySummary = QualitySummary()


def check_with_history(*, pairs, symbols, exchanges, width, dates, close, volume, adj_factor, flags,
                       quarantined, carried=None, actions=None):
    """OR the series flags into `flags`/`quarantined` (arrays aligned with the new bars, modified in place).

    pairs: int64 code per row for its (symbol, exchange) = symbol code * width + exchange code, with
    `symbols`/`exchanges` the categories; rows sorted by pair then date. dates datetime64; close and
    volume float64 after check_bars (NaN = missing). carried: DataFrame(date, dividend?, split_ratio?)
    aligned with the rows (the frame's own action columns); actions: adjustments.ACTION_COLUMNS frame.
    Returns a History.
    """
    history = History()
    unique = np.unique(pairs)
    keys = [(str(symbols[u // width]), str(exchanges[u % width])) for u in unique.tolist()]
    ids = _instrument_ids(keys)
    id_of_pair = {int(u): ids[key] for u, key in zip(unique.tolist(), keys) if key in ids}
    starts = np.r_[0, np.flatnonzero(np.diff(pairs)) + 1]  # each pair's first (earliest) new bar
    first_day = dict(zip(pairs[starts].tolist(), np.asarray(dates, dtype="datetime64[D]")[starts]))
    tail = _stored_tails({iid: first_day[pair] for pair, iid in id_of_pair.items()})
    pair_of_id = {iid: pair for pair, iid in id_of_pair.items()}
    tail["key"] = tail["instrument_id"].map(pair_of_id).astype(np.int64)
    explained = _explained(pairs, dates, carried, actions, symbols, exchanges, width, id_of_pair,
                           pair_of_id, tail)

    new = pd.DataFrame({"key": pairs, "date": dates, "close": close, "volume": volume, "adj_factor": adj_factor},
                       copy=False)
    exchange_of = np.asarray([str(exchanges[c]) for c in range(len(exchanges))], dtype=object)
    calendar_names = {e: calendars.calendar_name(e) for e in exchange_of}
    gaps, series_counts = [], {}
    for name in dict.fromkeys(calendar_names.values()):
        codes = [c for c, e in enumerate(exchange_of) if calendar_names[e] == name]
        rows = np.flatnonzero(np.isin(pairs % width, codes))
        stored = np.flatnonzero(np.isin(tail["key"].to_numpy() % width, codes))
        if not len(rows):
            continue
        sessions = None if name is None else calendars.sessions(name)
        part = new.iloc[rows]
        context = tail.iloc[stored]
        frame = pd.concat([context[["key", "date", "close", "volume", "adj_factor"]], part], ignore_index=True)
        series = check_series(frame, explained=explained, sessions=sessions)
        found = series[len(context):]
        flags[rows] |= found
        quarantined[rows] |= (found & QUARANTINE_MASK) != 0
        for bit in FLAG_LABELS:
            if bit & SERIES_FLAGS:
                series_counts[bit] = series_counts.get(bit, 0) + int(np.count_nonzero(found & bit))
        history.restate += _restatements(context, series[:len(context)])
        if sessions is not None:
            # The new bars and the latest stored bar before them: a gap across the boundary counts once.
            latest = context[context["rank"] == 1]
            spans = pd.concat([latest[["key", "date"]], part[["key", "date"]]], ignore_index=True)
            gaps.append(session_gaps(spans, sessions))
    history.summary = _summary(gaps, symbols, exchanges, width, series_counts, len(history.restate))
    return history


def restate(bars):
    """Write the restated flags of stored bars (History.restate); reviewed bars were never chosen."""
    if bars:
        now = timezone.now()
        for bar in bars:
            bar.updated_at = now
        PriceBar.objects.bulk_update(bars, ["flags", "quarantined", "updated_at"], batch_size=500)
    return len(bars)


def _instrument_ids(keys):
    """{(symbol, exchange): id} of the instruments that exist."""
    wanted = set(keys)
    symbols = sorted({symbol for symbol, _ in keys})
    found = {}
    for start in range(0, len(symbols), 500):
        rows = Instrument.objects.filter(symbol__in=symbols[start:start + 500]).values_list("pk", "symbol", "exchange")
        for pk, symbol, exchange in rows:
            if (symbol, exchange) in wanted:
                found[(symbol, exchange)] = pk
    return found


TAIL_COLUMNS = ["id", "instrument_id", "date", "close", "volume", "adj_factor", "flags", "quarantined", "reviewed",
                "rank"]


def _stored_tails(first_day):
    """The last SERIES_TAIL stored bars of each instrument before its first new bar, oldest first.

    first_day: {instrument_id: datetime64 date}. On PostgreSQL one query per INSTRUMENT_CHUNK
    instruments, each an index range scan on (instrument_id, date); a backfill into empty tables reads
    nothing. SQLite plans the OR of ranges under a window as a scan of every bar (9 s for a daily run of
    500 instruments), so there each instrument is its own LIMIT query on the index (0.2 s).
    """
    rows = []
    items = list(first_day.items())
    if connection.vendor == "sqlite":
        sql = (f"SELECT {', '.join(TAIL_COLUMNS[:-1])} FROM {PriceBar._meta.db_table} "
               "WHERE instrument_id = %s AND date < %s ORDER BY date DESC LIMIT %s")
        with connection.cursor() as cursor:
            for iid, day in items:
                cursor.execute(sql, [iid, _as_date(day).isoformat(), SERIES_TAIL])
                rows += [(*row, rank) for rank, row in enumerate(cursor.fetchall(), start=1)]
        items = []
    for start in range(0, len(items), INSTRUMENT_CHUNK):
        chunk = items[start:start + INSTRUMENT_CHUNK]
        where = reduce(or_, (Q(instrument_id=iid, date__lt=_as_date(day)) for iid, day in chunk))
        rows += PriceBar.objects.filter(where).annotate(
            rank=Window(RowNumber(), partition_by=[F("instrument_id")], order_by=F("date").desc()),
        ).filter(rank__lte=SERIES_TAIL).values_list(*TAIL_COLUMNS)
    tail = pd.DataFrame(rows, columns=TAIL_COLUMNS)
    tail["date"] = pd.to_datetime(tail["date"]) if len(tail) else pd.Series([], dtype="datetime64[ns]")
    for column in ("close", "volume", "adj_factor"):
        tail[column] = tail[column].astype("float64")
    for column in ("quarantined", "reviewed"):  # SQLite's raw cursor gives 0/1
        tail[column] = tail[column].astype(bool)
    return tail.sort_values(["instrument_id", "date"], ignore_index=True)


def _as_date(day):
    return pd.Timestamp(day).date()


def _explained(pairs, dates, carried, actions, symbols, exchanges, width, id_of_pair, pair_of_id, tail):
    """DataFrame(key, date) of the ex-dates that explain a jump: stored actions, the frame's, and `actions`."""
    parts = []
    if carried is not None:
        has = np.zeros(len(pairs), dtype=bool)
        if "dividend" in carried:
            has |= carried["dividend"].to_numpy(dtype="float64", na_value=0.0) != 0
        if "split_ratio" in carried:
            has |= carried["split_ratio"].to_numpy(dtype="float64", na_value=1.0) != 1
        if has.any():
            parts.append(pd.DataFrame({"key": pairs[has], "date": np.asarray(dates)[has]}))
    if actions is not None and len(actions):
        symbol_code = pd.Index(symbols).get_indexer(actions["symbol"].astype(str))
        exchange_code = pd.Index(exchanges).get_indexer(actions["exchange"].astype(str))
        known = (symbol_code >= 0) & (exchange_code >= 0)
        parts.append(pd.DataFrame({"key": symbol_code[known].astype(np.int64) * width + exchange_code[known],
                                   "date": pd.to_datetime(actions["ex_date"]).to_numpy()[known]}))
    if id_of_pair:
        since = min(np.asarray(dates, dtype="datetime64[D]").min(),
                    tail["date"].min().to_datetime64().astype("datetime64[D]") if len(tail) else np.datetime64("9999-12-31"))
        ids = list(id_of_pair.values())
        stored = []
        for start in range(0, len(ids), 500):
            stored += CorporateAction.objects.filter(instrument_id__in=ids[start:start + 500],
                                                     ex_date__gte=_as_date(since)).values_list("instrument_id", "ex_date")
        if stored:
            frame = pd.DataFrame(stored, columns=["instrument_id", "date"])
            parts.append(pd.DataFrame({"key": frame["instrument_id"].map(pair_of_id).to_numpy(dtype=np.int64),
                                       "date": pd.to_datetime(frame["date"]).to_numpy()}))
    if not parts:
        return None
    return pd.concat(parts, ignore_index=True)


def _restatements(context, series):
    """PriceBar(pk, flags, quarantined) for the newest RESTATE unreviewed stored bars whose series bits change."""
    if not len(context):
        return []
    old = context["flags"].to_numpy(dtype=np.int64)
    new = (old & ~SERIES_FLAGS) | series
    eligible = (context["rank"].to_numpy() <= RESTATE) & ~context["reviewed"].to_numpy(dtype=bool)
    changed = eligible & (new != old)
    if not changed.any():
        return []
    was = context["quarantined"].to_numpy(dtype=bool)
    # A bar quarantined by hand (no serious flag) stays quarantined; otherwise its serious flags decide.
    by_flags = (new & QUARANTINE_MASK) != 0
    keep_manual = was & ((old & QUARANTINE_MASK) == 0)
    quarantined = by_flags | keep_manual
    return [PriceBar(pk=int(pk), flags=int(f), quarantined=bool(q))
            for pk, f, q in zip(context["id"].to_numpy()[changed], new[changed], quarantined[changed])]


def _summary(gaps, symbols, exchanges, width, series_counts, restated):
    """Missing-session counts, the worst gaps, and the series flags found (labels), for the run's record."""
    gaps = [g for g in gaps if len(g)]
    gaps = pd.concat(gaps, ignore_index=True) if gaps else pd.DataFrame({"key": [], "sessions": []})
    worst = gaps.sort_values(["sessions", "start"], ascending=[False, True]).head(WORST_GAPS) if len(gaps) else gaps
    return QualitySummary(
        missing_sessions=int(gaps["sessions"].sum()) if len(gaps) else 0,
        instruments_with_gaps=int(gaps["key"].nunique()) if len(gaps) else 0,
        worst_gaps=tuple(
            {"symbol": str(symbols[int(row.key) // width]), "exchange": str(exchanges[int(row.key) % width]),
             "start": _iso(row.start), "end": _iso(row.end), "sessions": int(row.sessions)}
            for row in worst.itertuples()
        ),
        series_flags=tuple((FLAG_LABELS[bit], n) for bit, n in series_counts.items() if n),
        stored_bars_restated=restated,
    )


def _iso(value):
    return pd.Timestamp(value).date().isoformat()
