"""From the market data to quant: a universe as point-in-time UniversePanels, one per exchange calendar.

A universe is one code of `marketdata.universes` (SP500, ASX300) or several joined by `+`. Its members
over the window come from their membership intervals (delisted names included), their bars from the
Parquet panels (`marketdata.panels.load_panels`: quarantined bars left out, stale panels refused). Names
on venues of one calendar (XNYS, XNAS, ARCX and BATS share NYSE's) form one panel: windows count that
calendar's sessions, so the ASX and the US are never mixed in one rolling window.
"""
import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from marketdata import symbols as symbol_master
from marketdata import universes
from marketdata.models import CALENDAR_OF, Instrument, PriceBar
from marketdata.panels import PanelsMissing, load_panels, read_manifest
from quant.screens import EQUAL_WEIGHT, UniversePanel, equal_weight_index
from quant.universe import membership_mask

FIELDS = ("adj_close", "adj_high", "adj_low", "close", "volume")
# Calendar days that hold a number of sessions, with room for holidays and missing days.
DAYS_PER_SESSION = 1.5
SLACK_DAYS = 30


class ScanError(ValueError):
    """A scan or replay that cannot run: unknown screen or universe, bad parameters, no data, no benchmark.

    `field` names the input at fault (screen, universe, as_of, params.<name>, benchmark) when there is one.
    """

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.field = field

    @property
    def detail(self):
        """'field: message' when a field is at fault, else the message (what pages and the command show)."""
        return f"{self.field}: {self}" if self.field else str(self)


@dataclass
class Group:
    """The universe's names on one exchange calendar: their panel and how to find their instruments."""

    calendar: str
    panel: UniversePanel
    ids: dict = field(default_factory=dict)  # key -> instrument id
    benchmark: str | None = None  # the benchmark used: an instrument key, 'equal_weight' or None


def universe_codes(universe: str) -> list[str]:
    """'sp500 + asx300' -> ['SP500', 'ASX300']; ScanError for an empty or unknown code."""
    codes = list(dict.fromkeys(c.strip().upper() for c in (universe or "").split("+") if c.strip()))
    if not codes:
        raise ScanError("give a universe, e.g. SP500, ASX300 or SP500+ASX300", field="universe")
    known = universes.known_codes()
    for code in codes:
        if code not in known:
            listed = ", ".join(known) or "none yet; load one with manage.py import_universe"
            raise ScanError(f"unknown universe {code!r} (known: {listed})", field="universe")
    return codes


def universe_calendars(universe: str) -> set[str]:
    """The exchange calendars the universe's members trade on (ScanError for an unknown code)."""
    codes = universe_codes(universe)
    exchanges = set()
    for code in codes:
        exchanges |= set(universes.member_intervals(code)["exchange"])
    return {CALENDAR_OF[e] for e in exchanges if e in CALENDAR_OF}


def latest_session(universe: str) -> dt.date | None:
    """The last date the panels hold for any exchange the universe's members are listed on (None: none)."""
    return data_span(universe)[1]


def data_span(universe: str) -> tuple[dt.date | None, dt.date | None]:
    """(first, last) date the panels hold for the exchanges the universe's members are listed on
    ((None, None): no panels yet)."""
    exchanges = set()
    for code in universe_codes(universe):
        exchanges |= set(universes.member_intervals(code)["exchange"])
    entries = [entry for exchange in exchanges for entry in (read_manifest(exchange) or {}).get("files", {}).values()]
    firsts = [entry["first_date"] for entry in entries if entry.get("first_date")]
    lasts = [entry["last_date"] for entry in entries if entry.get("last_date")]
    return (dt.date.fromisoformat(min(firsts)) if firsts else None,
            dt.date.fromisoformat(max(lasts)) if lasts else None)


def window_start(as_of: dt.date, sessions: int) -> dt.date:
    """A first date far enough before `as_of` to hold `sessions` sessions of either calendar."""
    return as_of - dt.timedelta(days=math.ceil(sessions * DAYS_PER_SESSION) + SLACK_DAYS)


def load_universe(universe: str, *, start: dt.date, end: dt.date, benchmarks: dict | None = None,
                  check: bool = True) -> tuple[list[Group], list[str]]:
    """The universe's members over [start, end] as one Group per exchange calendar with bars, and the
    calendars of members that had no bar in the window (left out, so the caller can say so).

    benchmarks: {calendar: instrument key or 'equal_weight'} for relative-strength screens; a key must be
    an instrument with bars in the panels (ScanError otherwise). Members without any bar in the panels are
    kept as empty columns (they count in the universe, and fail the `data` rule). A calendar with no bar
    at all in the window is left out. Raises ScanError, and PanelsMissing / PanelsStale from the loader.
    """
    codes = universe_codes(universe)
    intervals = pd.concat([universes.member_intervals(code) for code in codes], ignore_index=True)
    start64, end64 = np.datetime64(start, "s"), np.datetime64(end, "s")
    live = (intervals["start"] <= end64) & (intervals["end"].isna() | (intervals["end"] > start64))
    intervals = intervals[live.to_numpy()].copy()
    intervals["key"] = intervals["exchange"] + ":" + intervals["symbol"]
    intervals["calendar"] = intervals["exchange"].map(CALENDAR_OF)
    intervals = intervals[intervals["calendar"].notna()]
    if intervals.empty:
        raise ScanError(f"universe {universe} has no members between {start} and {end}", field="universe")
    instruments = _instruments(intervals["instrument_id"].unique().tolist())
    wanted_bench = {}
    for calendar in sorted(intervals["calendar"].unique()):
        choice = (benchmarks or {}).get(calendar)
        if choice and choice != EQUAL_WEIGHT:
            wanted_bench[calendar] = _benchmark_instrument(choice, calendar)
    in_panels = _in_panels({row["exchange"] for row in instruments.values()}
                           | {i.exchange for i in wanted_bench.values()})
    ids = sorted({pk for pk in instruments if pk in in_panels} | {i.pk for i in wanted_bench.values()})
    missing = [i.key for i in wanted_bench.values() if i.pk not in in_panels]
    if missing:
        raise ScanError(f"benchmark {missing[0]} has no bars in the panels; ingest it and run manage.py panels",
                        field="benchmark")
    frames = load_panels(fields=FIELDS, instrument_ids=ids, start=start, end=end, check=check) if ids else None
    groups, without_bars = [], []
    for calendar, members in intervals.groupby("calendar", sort=True):
        group = _group(calendar, members, instruments, frames, wanted_bench.get(calendar),
                       (benchmarks or {}).get(calendar))
        if group is None:
            without_bars.append(calendar)
        else:
            groups.append(group)
    if not groups:
        raise ScanError(f"no bars of universe {universe} between {start} and {end} in the panels; "
                        "ingest them and run manage.py panels", field="universe")
    return groups, without_bars


def _group(calendar, members, instruments, frames, bench_instrument, choice):
    keys = sorted(set(members["key"]))
    if frames is None:
        return None
    present = [k for k in keys if k in frames["adj_close"].columns]
    columns = list(present)
    if bench_instrument is not None:
        columns.append(bench_instrument.key)
    # The calendar's dates: those on which one of its names (or its index) has a bar.
    block = {name: frames[name].reindex(columns=columns) for name in FIELDS}
    has_bar = np.zeros(len(frames["adj_close"]), dtype=bool)
    for name in FIELDS:
        has_bar |= block[name].notna().to_numpy().any(axis=1)
    if not has_bar.any():
        return None
    block = {name: frame[has_bar].reindex(columns=keys) for name, frame in block.items()}
    dates = block["adj_close"].index
    by_key = members.rename(columns={"key": "name"})
    mask = membership_mask(by_key[["name", "start", "end"]], dates, by="name").reindex(columns=keys, fill_value=False)
    rows = {row["key"]: row for row in instruments.values()}
    info = pd.DataFrame({"exchange": [rows[k]["exchange"] for k in keys],
                         "currency": [rows[k]["currency"] for k in keys],
                         "sector": [rows[k]["sector"] for k in keys]}, index=keys)
    starts = {k: pd.Timestamp(rows[k]["history_start"]) for k in keys if rows[k]["history_start"]}
    close = block["adj_close"]
    if bench_instrument is not None:
        level = frames["adj_close"].loc[dates, bench_instrument.key]
        used = bench_instrument.key
    elif choice == EQUAL_WEIGHT:
        # Built from the cleaned panel (BR-07, BR-13), members only, on each date.
        clean = UniversePanel.build(close=close, members=mask, history_start=starts)
        level, used = equal_weight_index(clean.close, clean.members), EQUAL_WEIGHT
    else:
        level, used = None, None
    panel = UniversePanel.build(close=close, high=block["adj_high"], low=block["adj_low"],
                                raw_close=block["close"], volume=block["volume"], members=mask, info=info,
                                history_start=starts, benchmark=level)
    return Group(calendar, panel, {k: rows[k]["id"] for k in keys}, used)


def _instruments(ids):
    """{id: {id, key, exchange, currency, sector, symbol, history_start}} of the members.

    history_start is the first session under the current code when the listing came from a code change
    (marketdata.symbols.renamed_on): bars under the code before that belong to another listing (BR-13).
    """
    out = {}
    chunk = 500
    for i in range(0, len(ids), chunk):
        for inst in Instrument.objects.filter(pk__in=ids[i:i + chunk]).with_renamed_on():
            start = symbol_master.renamed_on(inst) if inst.renamed_on else None
            out[inst.pk] = {"id": inst.pk, "key": inst.key, "exchange": inst.exchange, "currency": inst.currency,
                            "sector": inst.sector, "symbol": inst.symbol, "history_start": start}
    return out


def _benchmark_instrument(text, calendar):
    try:
        instrument = Instrument.objects.resolve(text)
    except Instrument.DoesNotExist:
        raise ScanError(f"benchmark {text!r} for {calendar} is not an instrument; load it (for XJO: manage.py "
                        "ingest --provider parquet --path ../shared/marketdata/asx/asx_indices_daily_2010_2024.parquet "
                        "--exchange XASX --asset-type index) or use 'equal_weight'", field="benchmark") from None
    except Instrument.MultipleObjectsReturned:
        raise ScanError(f"benchmark {text!r} is listed on several exchanges; say which, e.g. XASX:{text}",
                        field="benchmark") from None
    if CALENDAR_OF.get(instrument.exchange) != calendar:
        raise ScanError(f"benchmark {instrument.key} does not trade on the {calendar} calendar", field="benchmark")
    return instrument


def _in_panels(exchanges):
    """Ids of the instruments the panels of these exchanges know; PanelsMissing for an exchange that has
    bars in the database but no panels (its members would otherwise look like names without data)."""
    ids = set()
    for exchange in sorted(exchanges):
        manifest = read_manifest(exchange)
        if manifest:
            ids |= {int(pk) for pk in manifest["instruments"]}
        elif PriceBar.objects.filter(instrument__exchange=exchange).exists():
            raise PanelsMissing(f"{exchange}: bars in the database but no panels; "
                                f"run `manage.py panels --exchange {exchange}`")
    return ids
