"""What the scanner API reads and answers. Numbers are JSON numbers; a missing value is null, never NaN."""
import datetime as dt
from typing import Any, Optional

from ninja import Field, Schema
from pydantic import field_validator


class ScanIn(Schema):
    """POST /scanner/scan: a saved screen's name or a built-in screen, and optional overrides."""

    screen: str = Field(description="A saved screen (momentum-us) or a built-in one: momentum_breakout, "
                                    "high_52w, relative_strength")
    universe: Optional[str] = Field(None, description="SP500, ASX300 or SP500+ASX300; default: the saved screen's")
    as_of: Optional[dt.date] = Field(None, description="Default today; the latest session with data on or before it")
    params: Optional[dict[str, Any]] = Field(
        None, description="Overrides merged key by key into the saved or default parameters, e.g. {\"top_percent\": 2, "
                          "\"filters\": {\"sectors\": [\"Energy\"]}} (the other filters keep their defaults); {} "
                          "empties a group, null restores a default")


class FunnelEntry(Schema):
    rule: str
    label: str
    passed: int = Field(description="Names passing this rule and every rule before it")
    alone: int = Field(description="Members with data passing this rule whatever the others say")
    note: Optional[str] = Field(None, description="What the counts alone do not say: a sector no instrument of "
                                                   "the universe has, the names short of history and why")
    needed: Optional[int] = Field(None, description="history rule: the valid closes a name needs")
    renamed: Optional[list[dict[str, str]]] = Field(
        None, description="history rule: names left out because their history starts at a code change fewer "
                          "than `needed` sessions ago ({name, history_start})")
    short: Optional[list[dict[str, Any]]] = Field(
        None, description="history rule: the other names left out, {name, closes, sessions, first}: their valid "
                          "closes, the sessions since their first close in the window and its date")
    unmatched: Optional[list[str]] = Field(None, description="sector rule: sectors no instrument of the universe has")
    known: Optional[list[str]] = Field(None, description="sector rule: the sectors the universe's instruments have")


class MetricInfo(Schema):
    key: str
    label: str
    kind: str = Field(description="pct (a signed fraction: 0.05 = +5%), share (an unsigned fraction), price, "
                                  "money, ratio or number")
    short: str = Field("", description="A short column heading")


class ScanRunOut(Schema):
    id: int
    name: str = Field(description="The saved screen's name, or the built-in screen's key")
    screen: str
    screen_label: str
    saved_screen: Optional[str]
    universe: str
    as_of: dt.date = Field(description="The latest session with data on or before the requested date")
    requested_as_of: Optional[dt.date]
    sessions: dict[str, dt.date] = Field(description="The session used on each exchange calendar")
    benchmarks: dict[str, str]
    status: str = Field(description="queued, running, success or failed")
    error: str
    params: dict[str, Any]
    funnel: list[FunnelEntry]
    metrics: list[MetricInfo] = Field(description="The metrics each hit carries, in display order")
    hit_count: int
    created_at: dt.datetime
    started_at: Optional[dt.datetime]
    finished_at: Optional[dt.datetime]
    seconds: Optional[float]
    requested_by: Optional[str]

    @staticmethod
    def resolve_saved_screen(run):
        return run.saved_screen.name if run.saved_screen_id else None

    @staticmethod
    def resolve_requested_as_of(run):
        day = run.context.get("requested_as_of")
        return dt.date.fromisoformat(day) if day else None

    @staticmethod
    def resolve_sessions(run):
        return run.context.get("sessions", {})

    @staticmethod
    def resolve_benchmarks(run):
        return run.context.get("benchmarks", {})

    @staticmethod
    def resolve_metrics(run):
        return run.context.get("metrics", [])

    @staticmethod
    def resolve_seconds(run):
        return run.context.get("seconds")

    @staticmethod
    def resolve_requested_by(run):
        return run.requested_by.username if run.requested_by_id else None


class InstrumentRef(Schema):
    key: str
    symbol: str
    exchange: str
    name: str


class ScanHitOut(Schema):
    rank: int
    key: str
    symbol: str
    exchange: str
    name: str
    currency: str
    score: float
    metrics: dict[str, Optional[float]]
    sparkline: list[Optional[float]] = Field(description="Adjusted closes of the last 63 sessions up to as_of")
    setup_url: str = Field(description="The page with the instrument's chart marking this setup")


class ChangesOut(Schema):
    """Against the previous run of the same saved screen and universe (ad hoc: same screen and parameters)."""

    previous_run: Optional[int]
    previous_as_of: Optional[dt.date]
    new: list[InstrumentRef]
    dropped: list[InstrumentRef]


class ResultsOut(Schema):
    run: ScanRunOut
    hits: list[ScanHitOut]
    changes: ChangesOut


class SavedScreenIn(Schema):
    name: str = Field(description="Lower-case letters, digits, - and _, e.g. momentum-us")
    screen: str
    universe: str
    params: dict[str, Any] = Field(default_factory=dict)
    daily: bool = Field(True, description="Run by the daily chain after each of its exchanges' ingest")
    description: str = ""


class SavedScreenOut(Schema):
    name: str
    screen: str
    screen_label: str
    universe: str
    params: dict[str, Any]
    daily: bool
    description: str


class ScreenOut(Schema):
    key: str
    label: str
    description: str
    defaults: dict[str, Any]
    params_schema: dict[str, Any] = Field(description="The parameters' JSON schema")


class ScreensOut(Schema):
    screens: list[ScreenOut]
    saved: list[SavedScreenOut]


class ReplayIn(Schema):
    screen: str
    universe: Optional[str] = None
    start: dt.date
    end: dt.date
    params: Optional[dict[str, Any]] = None
    horizons: list[int] = Field([5, 20, 60], description="Sessions after each hit its return is measured over")
    only_new: bool = Field(True, description="Count a name when it enters the list, not every day on it")

    @field_validator("horizons")
    @classmethod
    def some(cls, value):
        if not value:
            raise ValueError("give at least one horizon")
        return value


class ReplayOut(Schema):
    id: int
    name: str
    screen: str
    universe: str
    start: dt.date
    end: dt.date
    horizons: list[int]
    only_new: bool
    params: dict[str, Any]
    status: str
    error: str
    summary: dict[str, Any] = Field(description="sessions, hits, days_with_hits, names, horizons: [{sessions, "
                                                "hits: {n, mean, median, hit_rate}, universe: {n, mean, hit_rate}, "
                                                "excess, pending}]; returns are fractions")
    hits: list[dict[str, Any]] = Field(description="date, key, score, fwd_<k> of every hit")
    created_at: dt.datetime
    finished_at: Optional[dt.datetime]
    requested_by: Optional[str]

    @staticmethod
    def resolve_requested_by(replay):
        return replay.requested_by.username if replay.requested_by_id else None
