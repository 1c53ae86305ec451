"""Universes as point-in-time index membership: import the S&P 500 and ASX top-300 files, ask who was in.

A membership is an IndexMembership row: the instrument was in the universe from `start` (inclusive)
until `end` (exclusive; NULL while still a member). Names that left, delisted ones included, keep their
intervals, so "members of U as of D" is free of survivorship bias as far as the source file is.

Sources (`import_memberships(code=...)`):

- SP500: `sp500_membership_intervals.csv` (ticker, start_date, end_date). Its end_date is the date of the
  index change, the first day the name is out (AAL ends 2024-09-23, the day DELL, PLTR and ERIE start;
  read inclusively the index would hold 506 names that day): it is stored as the exclusive end as is.
  A start of 1996-01-02 means "member when the history starts", not the addition date. Tickers are as
  traded, so a rename is a removal plus an addition, and bankrupt names keep their later OTC codes
  (ENRNQ, LEHMQ). Optionally `sp500_changes_since_2019.csv` (date, add, remove) then closes and opens
  intervals for the changes after the intervals file's last one.
- ASX300: `asx_top300_universe.csv`. It is NOT an index membership list: a static selection of the 300
  codes with the highest traded value over 2010-01-04..2024-05-31. Each code's interval spans its first
  to last traded date in that period (the file's first_date/last_date, which are those of the ASX price
  file); a code still trading on the file's last date is left open. Because the selection ranks on the
  whole period's liquidity, a backtest over it picks names with hindsight: use it to scan and test, not
  as a point-in-time index. Codes reused by another company (WDS, HLS) are one interval per code.
"""
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, transaction
from django.utils import timezone

from .errors import IngestError
from .models import CURRENCY_OF, IndexMembership, IngestRun, Instrument

# Exchanges an S&P 500 ticker may be listed on, in the order preferred when several instruments match.
US_VENUES = ("XNYS", "XNAS", "ARCX", "BATS")
INTERVAL_COLUMNS = ["symbol", "exchange", "name", "sector", "start", "end", "row"]
CHUNK = 500


class UnknownUniverse(ObjectDoesNotExist):
    """No memberships are stored under this code; the message lists the codes that have some."""


@dataclass(frozen=True)
class MembershipResult:
    """What import_memberships did to the universe's stored intervals."""

    intervals: int = 0
    instruments: int = 0
    created: int = 0
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    def summary(self):
        return (f"{self.intervals:,} intervals for {self.instruments:,} instruments ({self.created:,} created): "
                f"{self.inserted:,} inserted, {self.updated:,} updated, {self.removed:,} removed, "
                f"{self.unchanged:,} unchanged")


def known_codes() -> list[str]:
    """Codes of the universes that have stored memberships, sorted."""
    return sorted(IndexMembership.objects.order_by().values_list("index_code", flat=True).distinct())


def _check_code(code):
    code = (code or "").strip().upper()
    if not IndexMembership.objects.filter(index_code=code).exists():
        known = ", ".join(known_codes()) or "none yet; load one with manage.py import_universe"
        raise UnknownUniverse(f"unknown universe {code!r} (known: {known})")
    return code


def members(code: str, as_of: dt.date):
    """Instruments in universe `code` on `as_of`: added on or before it, not yet removed; delisted ones too.

    Raises UnknownUniverse when nothing is stored under `code`.
    """
    code = _check_code(code)
    inside = IndexMembership.objects.filter(index_code=code).as_of(as_of).values("instrument_id")
    return Instrument.objects.filter(pk__in=inside)


def member_intervals(code: str) -> pd.DataFrame:
    """Every membership interval of universe `code`, for vectorised point-in-time masks.

    Columns: instrument_id (int64), symbol, exchange (str), start, end (datetime64[s], midnight; `end` is
    exclusive and NaT while still a member). Sorted by symbol, exchange, start. Raises UnknownUniverse.
    """
    code = _check_code(code)
    rows = list(IndexMembership.objects.filter(index_code=code)
                .order_by("instrument__symbol", "instrument__exchange", "start")
                .values_list("instrument_id", "instrument__symbol", "instrument__exchange", "start", "end"))
    ids, symbols, exchanges, starts, ends = zip(*rows)
    return pd.DataFrame({
        "instrument_id": np.array(ids, dtype=np.int64),
        "symbol": list(symbols),
        "exchange": list(exchanges),
        "start": np.array(starts, dtype="datetime64[s]"),
        "end": np.array([np.datetime64("NaT") if e is None else e for e in ends], dtype="datetime64[s]"),
    })


def import_memberships(*, code: str, path, changes=None, details=None, requested_by=None) -> IngestRun:
    """Replace universe `code`'s stored intervals with those the file gives, and record an IngestRun.

    Instruments the file names that do not exist yet are created (S&P 500 ones on XNYS unless an
    instrument with the symbol exists on another US venue; ASX ones on XASX), never marked inactive.
    Validates the whole file first and writes in one transaction, so a bad file changes nothing; raises
    IngestError naming file, row and column (after recording the run as failed). Re-importing the same
    file changes nothing. `details`: a constituents list whose names and GICS sectors are set on the
    instruments it names (the ASX 300 file carries its own). The run carries `.result`, a MembershipResult.
    """
    code = (code or "").strip().upper()
    params = {key: value for key, value in {
        "code": code, "path": str(path), "changes": str(changes) if changes else None,
        "details": str(details) if details else None}.items() if value}
    run = IngestRun.objects.create(kind=IngestRun.Kind.MEMBERSHIP, provider="csv", params=params,
                                   requested_by=requested_by)
    began = timezone.now()
    try:
        if code not in READERS:
            raise IngestError(f"unknown universe {code!r} (importable: {', '.join(READERS)})")
        if changes and code != "SP500":
            raise IngestError(f"a changes file is only read for SP500, not {code}")
        intervals = READERS[code](Path(path))
        run.rows_read = len(intervals)
        if changes:
            intervals = apply_sp500_changes(intervals, Path(changes))
        if details:
            intervals = apply_details(intervals, Path(details))
        with transaction.atomic():
            result = _store(code, intervals)
    except Exception as exc:
        run.status = IngestRun.Status.FAILED
        run.errors = [str(exc) or type(exc).__name__]
        run.finished_at = timezone.now()
        run.save()
        if isinstance(exc, DatabaseError):
            raise IngestError(f"the database refused the memberships: {exc}", file=str(path)) from exc
        raise
    run.status = IngestRun.Status.SUCCESS
    run.symbols = result.instruments
    run.rows_inserted, run.rows_updated, run.rows_unchanged = result.inserted, result.updated, result.unchanged
    run.finished_at = timezone.now()
    run.steps = [{"step": "memberships", "status": "success",
                  "seconds": round((run.finished_at - began).total_seconds(), 3), "detail": result.summary()}]
    run.save()
    run.result = result
    return run


# --- reading -------------------------------------------------------------------------------------

def read_csv_columns(path, columns, *, optional=()):
    """{column: stripped text Series} of a small CSV (gzip allowed); the header row is row 1 in messages.

    Raises IngestError naming the file when it is missing, unreadable or lacks one of `columns`.
    """
    label = path.name
    if not path.is_file():
        raise IngestError("no such file", file=str(path))
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise IngestError("not a UTF-8 text file", file=label) from None
    except pd.errors.EmptyDataError:
        raise IngestError("the file is empty", file=label) from None
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as exc:
        raise IngestError(f"cannot be read as CSV: {exc}", file=label) from None
    headers = {str(h).strip().lower(): h for h in raw.columns}
    for column in columns:
        if column not in headers:
            found = ", ".join(f'"{h}"' for h in raw.columns) or "none"
            raise IngestError(f'missing column "{column}" (columns found: {found})', file=label)
    return {c: raw[headers[c]].str.strip() for c in (*columns, *optional) if c in headers}


def parse_dates(values, *, file, column, required=True):
    """datetime64[s] of YYYY-MM-DD text (NaT for '' when not required); IngestError at the first bad row."""
    parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    # pandas reads '2014-8-8' with this format too; the contract is zero-padded ISO dates.
    parsed[~values.str.fullmatch(r"\d{4}-\d{2}-\d{2}")] = pd.NaT
    bad = parsed.isna() & ((values != "") | required)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        problem = "missing" if values.iat[i] == "" else f"{values.iat[i]!r} is not a date (expected YYYY-MM-DD)"
        raise IngestError(problem, file=file, row=i + 2, column=column)
    return parsed.to_numpy(dtype="datetime64[s]")


def _required_text(values, *, file, column):
    bad = (values == "").to_numpy()
    if bad.any():
        raise IngestError("missing", file=file, row=int(np.flatnonzero(bad)[0]) + 2, column=column)
    return values.str.upper()


def read_sp500_intervals(path: Path) -> pd.DataFrame:
    """Intervals of `sp500_membership_intervals.csv`: INTERVAL_COLUMNS, exchange left '' (resolved on write)."""
    file = path.name
    raw = read_csv_columns(path, ["ticker", "start_date", "end_date"])
    frame = pd.DataFrame({
        "symbol": _required_text(raw["ticker"], file=file, column="ticker"),
        "exchange": "",
        "name": "",
        "sector": "",
        "start": parse_dates(raw["start_date"], file=file, column="start_date"),
        "end": parse_dates(raw["end_date"], file=file, column="end_date", required=False),
        "row": np.arange(2, len(raw["ticker"]) + 2),
    })
    return _checked(frame, file=file, start_column="start_date", end_column="end_date")


def read_asx_top300(path: Path) -> pd.DataFrame:
    """Intervals of `asx_top300_universe.csv`: first_date .. last_date (+1 day, exclusive) per code on XASX.

    A code whose last_date is the file's last date was still trading when the selection was made, so its
    interval is left open.
    """
    file = path.name
    raw = read_csv_columns(path, ["ticker", "first_date", "last_date"], optional=["company_name", "gics_industry_group"])
    first = parse_dates(raw["first_date"], file=file, column="first_date")
    last = parse_dates(raw["last_date"], file=file, column="last_date")
    bad = last < first
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise IngestError(f"{raw['last_date'].iat[i]} is before first_date {raw['first_date'].iat[i]}",
                          file=file, row=i + 2, column="last_date")
    end = (last + np.timedelta64(1, "D")).astype("datetime64[s]")
    end[last == last.max()] = np.datetime64("NaT")
    frame = pd.DataFrame({
        "symbol": _required_text(raw["ticker"], file=file, column="ticker"),
        "exchange": "XASX",
        "name": raw.get("company_name", pd.Series([""] * len(first))).to_numpy(dtype=object),
        # GICS industry group (Materials, Banks, ...): the level ASX's own list gives.
        "sector": raw.get("gics_industry_group", pd.Series([""] * len(first))).to_numpy(dtype=object),
        "start": first,
        "end": end,
        "row": np.arange(2, len(first) + 2),
    })
    return _checked(frame, file=file, start_column="first_date", end_column="last_date")


def _checked(frame, *, file, start_column, end_column):
    """Drop exact repeats; refuse an end not after its start and intervals of one symbol that overlap."""
    bad = frame["end"].notna() & (frame["end"] <= frame["start"])
    if bad.any():
        row = frame[bad].iloc[0]
        raise IngestError(f"{row['end']:%Y-%m-%d} is not after the start {row['start']:%Y-%m-%d}",
                          file=file, row=int(row["row"]), column=end_column)
    frame = frame.drop_duplicates(["symbol", "start", "end"]).sort_values(["symbol", "start"], kind="stable")
    same = frame["symbol"].to_numpy()[1:] == frame["symbol"].to_numpy()[:-1]
    previous_end = frame["end"].to_numpy()[:-1]
    overlap = same & (np.isnat(previous_end) | (previous_end > frame["start"].to_numpy()[1:]))
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        earlier, later = frame.iloc[i], frame.iloc[i + 1]
        raise IngestError(f"{later['symbol']}'s interval from {later['start']:%Y-%m-%d} overlaps the one in row "
                          f"{int(earlier['row'])}", file=file, row=int(later["row"]), column=start_column)
    return frame.reset_index(drop=True)


def apply_sp500_changes(intervals: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Extend S&P 500 intervals with `sp500_changes_since_2019.csv` rows dated after their last change.

    A removal closes the ticker's open interval on that date (exclusive end); an addition opens one. A
    cell may name several tickers separated by commas. Raises IngestError naming the row and column of
    a removal of a non-member or an addition of a current member.
    """
    file = path.name
    raw = read_csv_columns(path, ["date", "add", "remove"])
    dates = parse_dates(raw["date"], file=file, column="date")
    last_change = max(intervals["start"].max(), intervals["end"].max())
    frame = intervals.copy()
    order = np.argsort(dates, kind="stable")
    for i in order[dates[order] > np.datetime64(last_change)]:
        day = dates[i]
        for column in ("remove", "add"):
            for symbol in [s.strip().upper() for s in raw[column].iat[i].split(",") if s.strip()]:
                open_ = frame.index[(frame["symbol"] == symbol) & frame["end"].isna()]
                if column == "remove":
                    if not len(open_):
                        raise IngestError(f"{symbol} is removed on {day} but is not a member then",
                                          file=file, row=int(i) + 2, column=column)
                    frame.loc[open_[0], "end"] = day
                else:
                    if len(open_):
                        raise IngestError(f"{symbol} is added on {day} but is already a member",
                                          file=file, row=int(i) + 2, column=column)
                    frame.loc[len(frame)] = {"symbol": symbol, "exchange": "", "name": "", "sector": "", "start": day,
                                             "end": np.datetime64("NaT"), "row": int(i) + 2}
    return frame.sort_values(["symbol", "start"], kind="stable").reset_index(drop=True)


def apply_details(intervals: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Names and GICS sectors from a constituents list (`sp500_constituents_current.csv`: Symbol, Security,
    GICS Sector) onto the intervals of the symbols it lists; the others keep theirs."""
    raw = read_csv_columns(path, ["symbol", "security", "gics sector"])
    symbols = _required_text(raw["symbol"], file=path.name, column="Symbol")
    names = dict(zip(symbols, raw["security"]))
    sectors = dict(zip(symbols, raw["gics sector"]))
    frame = intervals.copy()
    frame["name"] = [names.get(sym) or name for sym, name in zip(frame["symbol"], frame["name"])]
    frame["sector"] = [sectors.get(sym) or sector for sym, sector in zip(frame["symbol"], frame["sector"])]
    return frame


READERS = {"SP500": read_sp500_intervals, "ASX300": read_asx_top300}


# --- writing -------------------------------------------------------------------------------------

def _store(code, intervals):
    """Make the stored intervals of `code` exactly `intervals`; counts of what changed."""
    ids, created = _instrument_ids(intervals)
    starts = [pd.Timestamp(s).date() for s in intervals["start"]]
    ends = [None if pd.isna(e) else pd.Timestamp(e).date() for e in intervals["end"]]
    wanted = {(pk, start): end for pk, start, end in zip(ids, starts, ends)}
    stored = {(m.instrument_id, m.start): m for m in IndexMembership.objects.filter(index_code=code)}
    gone = [m.pk for key, m in stored.items() if key not in wanted]
    changed = []
    for key, membership in stored.items():
        if key in wanted and membership.end != wanted[key]:
            membership.end = wanted[key]
            changed.append(membership)
    new = [IndexMembership(index_code=code, instrument_id=pk, start=start, end=end)
           for (pk, start), end in wanted.items() if (pk, start) not in stored]
    for i in range(0, len(gone), CHUNK):
        IndexMembership.objects.filter(pk__in=gone[i:i + CHUNK]).delete()
    IndexMembership.objects.bulk_update(changed, ["end"], batch_size=CHUNK)
    IndexMembership.objects.bulk_create(new, batch_size=CHUNK)
    return MembershipResult(
        intervals=len(wanted), instruments=len(set(ids)), created=created, inserted=len(new),
        updated=len(changed), removed=len(gone), unchanged=len(wanted) - len(new) - len(changed),
    )


def _instrument_ids(intervals):
    """The Instrument id of each interval's symbol, creating missing ones; and how many were created.

    Rows with an exchange are that listing; rows without (S&P 500) take an existing instrument on a US
    venue, XNYS preferred, or a new one on XNYS.
    """
    names = dict(zip(intervals["symbol"], intervals["name"]))
    sectors = dict(zip(intervals["symbol"], intervals["sector"]))
    venues = {symbol: (exchange,) if exchange else US_VENUES
              for symbol, exchange in zip(intervals["symbol"], intervals["exchange"])}
    found = _existing(venues)
    new = [Instrument(symbol=symbol, exchange=options[0], currency=CURRENCY_OF[options[0]], name=names[symbol] or "",
                      sector=sectors[symbol] or "")
           for symbol, options in venues.items() if symbol not in found]
    if new:
        # ignore_conflicts: an ingest running at the same time may create the same instrument first.
        Instrument.objects.bulk_create(new, ignore_conflicts=True, batch_size=CHUNK)
        found = _existing(venues)
    for symbol, (pk, name) in found.items():
        if not name and names[symbol]:
            Instrument.objects.filter(pk=pk).update(name=names[symbol], updated_at=timezone.now())
    # A sector the file gives is reference data: it replaces what is stored (the scanner filters on it).
    for symbol, sector in sectors.items():
        if sector:
            (Instrument.objects.filter(pk=found[symbol][0]).exclude(sector=sector)
             .update(sector=sector, updated_at=timezone.now()))
    return [found[symbol][0] for symbol in intervals["symbol"]], len(new)


def _existing(venues):
    """{symbol: (id, name)} of the instrument each symbol means, among the exchanges allowed for it."""
    symbols = sorted(venues)
    candidates = {}
    for i in range(0, len(symbols), CHUNK):
        rows = Instrument.objects.filter(symbol__in=symbols[i:i + CHUNK]).values_list(
            "pk", "symbol", "exchange", "name")
        for pk, symbol, exchange, name in rows:
            if exchange in venues[symbol]:
                candidates.setdefault(symbol, []).append((venues[symbol].index(exchange), pk, name))
    return {symbol: min(options)[1:] for symbol, options in candidates.items()}
