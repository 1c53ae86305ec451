"""The symbol master: code changes (SymbolChange) and delistings, and what they mean for a stored series.

A listing that changes its code keeps its history under the old code: QQQ's bars before 2011-03-23 are
stored as QQQQ's. `rename_chain` walks SymbolChange back from an instrument's code, `renamed_on` and
`history_start` tell the scanner where the history under the current code really starts, and
`stitched_bars` joins the old codes' bars before each change to the new code's bars (PITFALLS BR-13).

Delistings are evidence, never guesses: `import_symbols(delisted=...)` marks an existing instrument
delisted only when a delisting of its code is dated on or after its last stored bar, and no code change
into or out of that code falls in between (codes are reused: WDS was delisted in 2016 and Woodside took
the code in 2022, so the bars after 2016 keep WDS active).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import DatabaseError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from .errors import IngestError
from .models import IngestRun, Instrument, PriceBar, SymbolChange

if TYPE_CHECKING:
    import pandas as pd

# numpy, pandas and the file readers are imported inside the import functions below: the API's price
# endpoint uses this module's queries (rename_chain, renamed_from) and must not load them (cold start).

ASX_SOURCE = "asx"
# A chain longer than this is a data loop, not a company's history.
MAX_CHAIN = 20


@dataclass(frozen=True)
class SymbolsResult:
    """What import_symbols changed: SymbolChange rows, and instruments marked delisted or active again."""

    changes: int = 0
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    delistings: int = 0
    delisted: int = 0
    reactivated: int = 0
    not_applied: int = 0

    def summary(self):
        parts = []
        if self.changes or self.inserted or self.removed:
            parts.append(f"{self.changes:,} code changes: {self.inserted:,} inserted, {self.updated:,} updated, "
                         f"{self.removed:,} removed, {self.unchanged:,} unchanged")
        if self.delistings:
            parts.append(f"{self.delistings:,} delistings: {self.delisted:,} instruments marked delisted, "
                         f"{self.reactivated:,} active again, {self.not_applied:,} stored instruments with the "
                         f"code kept active (bars after the delisting, no bars, or a code change in between)")
        return "; ".join(parts) or "nothing to import"


def import_symbols(*, changes=None, delisted=None, exchange: str = "XASX", requested_by=None) -> IngestRun:
    """Import ASX code changes into SymbolChange and apply ASX delistings as evidence; record an IngestRun.

    `changes` is `asx_name_changes_*.csv(.gz)` (only rows whose code changed are kept; the file's rows
    replace the earlier ones from the same source), `delisted` is `asx_delisted_*.csv(.gz)`. Either may be
    omitted. Both files are validated before one transaction writes; raises IngestError naming the file,
    row and column (after recording the run as failed). Re-importing changes nothing.
    """
    if not changes and not delisted:
        raise IngestError("give a code-changes file, a delistings file or both")
    params = {key: value for key, value in {
        "changes": str(changes) if changes else None, "delisted": str(delisted) if delisted else None,
        "exchange": exchange}.items() if value}
    run = IngestRun.objects.create(kind=IngestRun.Kind.SYMBOLS, provider="csv", params=params,
                                   requested_by=requested_by)
    began = timezone.now()
    try:
        renames = read_code_changes(Path(changes)) if changes else None
        delistings = read_delistings(Path(delisted)) if delisted else None
        run.rows_read = sum(len(f) for f in (renames, delistings) if f is not None)
        with transaction.atomic():
            counts = _store_changes(renames, exchange) if renames is not None else {}
            if delistings is not None:
                counts.update(_apply_delistings(delistings, exchange))
        result = SymbolsResult(**counts)
    except Exception as exc:
        run.status = IngestRun.Status.FAILED
        run.errors = [str(exc) or type(exc).__name__]
        run.finished_at = timezone.now()
        run.save()
        if isinstance(exc, DatabaseError):
            raise IngestError(f"the database refused the symbol changes: {exc}") from exc
        raise
    run.status = IngestRun.Status.SUCCESS
    run.symbols = result.delisted + result.reactivated
    run.rows_inserted, run.rows_updated, run.rows_unchanged = result.inserted, result.updated, result.unchanged
    run.finished_at = timezone.now()
    run.steps = [{"step": "symbols", "status": "success",
                  "seconds": round((run.finished_at - began).total_seconds(), 3), "detail": result.summary()}]
    run.save()
    run.result = result
    return run


# --- reading -------------------------------------------------------------------------------------

def _codes(values, *, file, column):
    import numpy as np

    bad = (values == "").to_numpy()
    if bad.any():
        raise IngestError("missing", file=file, row=int(np.flatnonzero(bad)[0]) + 2, column=column)
    return values.str.upper()


def read_code_changes(path: Path) -> pd.DataFrame:
    """Code changes of an ASX name-change file: date (datetime64), old_symbol, new_symbol, old_name, new_name.

    Rows where only the name changed (new_code = old_code) are left out; exact repeats are dropped.
    """
    import pandas as pd

    from .universes import parse_dates, read_csv_columns

    file = path.name
    raw = read_csv_columns(path, ["effective_date", "old_code", "new_code"], optional=["old_name", "new_name"])
    frame = pd.DataFrame({
        "date": parse_dates(raw["effective_date"], file=file, column="effective_date"),
        "old_symbol": _codes(raw["old_code"], file=file, column="old_code"),
        "new_symbol": _codes(raw["new_code"], file=file, column="new_code"),
        "old_name": raw.get("old_name", ""),
        "new_name": raw.get("new_name", ""),
    })
    frame = frame[frame["old_symbol"] != frame["new_symbol"]]
    return frame.drop_duplicates(["date", "old_symbol", "new_symbol"]).reset_index(drop=True)


def read_delistings(path: Path) -> pd.DataFrame:
    """Delistings of an ASX delisted file: symbol, date (datetime64, the date delisted), name, reason."""
    import pandas as pd

    from .universes import parse_dates, read_csv_columns

    file = path.name
    raw = read_csv_columns(path, ["code", "date_delisted"], optional=["company_name", "reason"])
    frame = pd.DataFrame({
        "symbol": _codes(raw["code"], file=file, column="code"),
        "date": parse_dates(raw["date_delisted"], file=file, column="date_delisted"),
        "name": raw.get("company_name", ""),
        "reason": raw.get("reason", ""),
    })
    return frame.drop_duplicates(["symbol", "date"]).reset_index(drop=True)


# --- writing -------------------------------------------------------------------------------------

def _store_changes(renames, exchange):
    import pandas as pd

    wanted = {(old, new, pd.Timestamp(day).date()): (old_name[:200], new_name[:200])
              for day, old, new, old_name, new_name in renames[
                  ["date", "old_symbol", "new_symbol", "old_name", "new_name"]].itertuples(index=False)}
    stored = {(c.old_symbol, c.new_symbol, c.date): c
              for c in SymbolChange.objects.filter(exchange=exchange, source=ASX_SOURCE)}
    gone = [c.pk for key, c in stored.items() if key not in wanted]
    changed = []
    for key, change in stored.items():
        if key in wanted and (change.old_name, change.new_name) != wanted[key]:
            change.old_name, change.new_name = wanted[key]
            changed.append(change)
    new = [SymbolChange(exchange=exchange, old_symbol=old, new_symbol=new_, date=day, old_name=names[0],
                        new_name=names[1], source=ASX_SOURCE)
           for (old, new_, day), names in wanted.items() if (old, new_, day) not in stored]
    SymbolChange.objects.filter(pk__in=gone).delete()
    SymbolChange.objects.bulk_update(changed, ["old_name", "new_name"], batch_size=500)
    # ignore_conflicts: the same change may already be stored from another source.
    SymbolChange.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)
    return {"changes": len(wanted), "inserted": len(new), "updated": len(changed), "removed": len(gone),
            "unchanged": len(wanted) - len(new) - len(changed)}


def _apply_delistings(delistings, exchange):
    """Mark delisted the stored instruments the evidence points at; undo our marks it no longer supports."""
    import pandas as pd

    dates_of = {symbol: sorted(pd.Timestamp(d).date() for d in group["date"])
                for symbol, group in delistings.groupby("symbol", sort=False)}
    instruments = (Instrument.objects.filter(exchange=exchange, symbol__in=list(dates_of))
                   .annotate(last_bar=Max("bars__date")))
    renamed = {}
    for old, new, day in (SymbolChange.objects.filter(exchange=exchange)
                          .filter(Q(old_symbol__in=list(dates_of)) | Q(new_symbol__in=list(dates_of)))
                          .values_list("old_symbol", "new_symbol", "date")):
        renamed.setdefault(old, []).append(day)
        renamed.setdefault(new, []).append(day)
    delisted = reactivated = not_applied = 0
    now = timezone.now()
    for instrument in instruments:
        day = _delisting_of(instrument, dates_of[instrument.symbol], renamed.get(instrument.symbol, []))
        if day is not None:
            if instrument.delisted_on != day or instrument.active:
                Instrument.objects.filter(pk=instrument.pk).update(delisted_on=day, active=False, updated_at=now)
                delisted += 1
            continue
        not_applied += 1
        # Our own earlier mark, which the stored bars now contradict (e.g. the reused code's bars arrived).
        if instrument.delisted_on in dates_of[instrument.symbol]:
            Instrument.objects.filter(pk=instrument.pk).update(delisted_on=None, active=True, updated_at=now)
            reactivated += 1
    return {"delistings": len(delistings), "delisted": delisted, "reactivated": reactivated,
            "not_applied": not_applied}


def _delisting_of(instrument, dates, code_changes):
    """The delisting date that ended this instrument's stored series, or None without evidence.

    The first delisting of the code on or after the last stored bar, when no code change into or out of
    the code is dated after that bar and on or before the delisting (then the code left, or came to,
    another listing in between). Without stored bars nothing says which company the code meant.
    """
    if instrument.last_bar is None:
        return None
    after = [d for d in dates if d >= instrument.last_bar]
    if not after:
        return None
    day = after[0]
    if any(instrument.last_bar < change <= day for change in code_changes):
        return None
    if instrument.listed_on and instrument.listed_on > day:
        return None
    return day


# --- reading the symbol master -------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    """The bars of `symbol` dated in [start, end) belong to the listing (None: unbounded)."""

    symbol: str
    start: dt.date | None
    end: dt.date | None


def rename_chain(instrument) -> list[SymbolChange]:
    """The code changes that led to `instrument`'s code, newest first (empty when it never changed code).

    Walks back from the latest change into the code. It stops where the code was given up in between
    (a change out of it after the change into it): the code then belongs to a later listing.
    """
    chain, symbol, before = [], instrument.symbol, None
    while len(chain) < MAX_CHAIN:
        into = SymbolChange.objects.filter(exchange=instrument.exchange, new_symbol=symbol)
        away = SymbolChange.objects.filter(exchange=instrument.exchange, old_symbol=symbol)
        if before:
            into, away = into.filter(date__lt=before), away.filter(date__lt=before)
        change = into.order_by("-date").first()
        if change is None or away.filter(date__gt=change.date).exists():
            break
        chain.append(change)
        symbol, before = change.old_symbol, change.date
    return chain


def segments(instrument, chain=None) -> list[Segment]:
    """Which code's bars make up the listing's history over which dates, newest first."""
    chain = rename_chain(instrument) if chain is None else chain
    out, end, symbol = [], None, instrument.symbol
    for change in chain:
        out.append(Segment(symbol, change.date, end))
        end, symbol = change.date, change.old_symbol
    out.append(Segment(symbol, None, end))
    return out


def renamed_from(instrument, chain=None) -> list[dict]:
    """[{symbol, date}] of the codes the listing traded under before, newest first; `date` is the change."""
    chain = rename_chain(instrument) if chain is None else chain
    return [{"symbol": change.old_symbol, "date": change.date} for change in chain]


def renamed_on(instrument) -> dt.date | None:
    """The first session under the instrument's current code when it came from a rename, else None.

    The scanner must not read a history under the current code as starting before this date.
    """
    chain = rename_chain(instrument)
    return chain[0].date if chain else None


def history_start(instrument, *, stitched: bool = False) -> dt.date | None:
    """The first usable (not quarantined) bar date of the listing's history, None without bars.

    Unstitched: the current code's bars from its rename on (bars under the code before the rename are
    another listing's or a provider's copy). Stitched: the earliest bar over the old codes too, as
    `stitched_bars` returns them. A code another company took over (a quarantined reused-code flag)
    starts again at the takeover. A 12-month return needs this to be at least 12 months back.
    """
    parts = segments(instrument)
    if not stitched:
        parts = parts[:1]
    # A code another company took over starts its history again there (PriceBar.objects.reused_codes).
    cut = PriceBar.objects.reused_codes(instrument.exchange, [instrument.pk]).get(instrument.pk)
    first = None
    for part in parts:
        bars = _segment_bars(instrument.exchange, part).clean()
        if cut:
            bars = bars.filter(date__gte=cut)
        day = bars.aggregate(first=Min("date"))["first"]
        if day is not None:
            first = day
    return first


def _segment_bars(exchange, part, *, start=None, end=None):
    bars = PriceBar.objects.filter(instrument__exchange=exchange, instrument__symbol=part.symbol).between(start, end)
    if part.start:
        bars = bars.filter(date__gte=part.start)
    if part.end:
        bars = bars.filter(date__lt=part.end)
    return bars


def stitched_bars(instrument, *, fields, start=None, end=None, include_quarantined=False, chain=None):
    """The listing's bars over its old codes and the current one, oldest first, as tuples of `fields`.

    `fields` must include "adj_factor": an old code's factors are multiplied by the newer code's factor
    on its first bar on or after the change, since actions after the change are stored under the newer
    code (an action ex-dated on the change day itself is not carried back). Returns (rows, segments).
    """
    parts = segments(instrument, chain)
    index = fields.index("adj_factor")
    rows, scale = [], 1.0
    for i, part in enumerate(parts):
        if i:
            # The newer segment's factor at the boundary: what its later actions do to older prices.
            newer = _segment_bars(instrument.exchange, parts[i - 1]).order_by("date")
            first = newer.values_list("adj_factor", flat=True).first()
            scale *= first if first else 1.0
        bars = _segment_bars(instrument.exchange, part, start=start, end=end)
        if not include_quarantined:
            bars = bars.clean()
        for row in bars.order_by("date").values_list(*fields):
            if scale != 1.0:
                row = (*row[:index], row[index] * scale, *row[index + 1:])
            rows.append(row)
    rows.sort(key=lambda row: row[fields.index("date")])
    return rows, parts
