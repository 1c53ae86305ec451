"""What the market-data API reads and answers; prices are JSON numbers (float), never strings."""
import datetime as dt
from typing import Annotated, Any, Literal, Optional

from ninja import Field, FilterLookup, FilterSchema, Schema
from pydantic import BaseModel, field_validator

from .models import AssetType, Exchange


class InstrumentOut(Schema):
    key: str
    symbol: str
    exchange: str
    currency: str
    name: str
    sector: str
    asset_type: str
    active: bool
    listed_on: Optional[dt.date]
    delisted_on: Optional[dt.date]


class InstrumentFilter(FilterSchema):
    q: Annotated[Optional[str], FilterLookup(["symbol__icontains", "name__icontains"])] = None
    exchange: Optional[Exchange] = None
    asset_type: Optional[AssetType] = None
    active: Optional[bool] = None

    @field_validator("q", mode="before")
    @classmethod
    def strip_q(cls, value):
        # " bhp " and "" mean "BHP" and "no filter", not a search for the padding.
        return (value.strip() or None) if isinstance(value, str) else value

    @field_validator("exchange", mode="before")
    @classmethod
    def upper_exchange(cls, value):
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("asset_type", mode="before")
    @classmethod
    def lower_asset_type(cls, value):
        return value.strip().lower() if isinstance(value, str) else value


# A plain pydantic model, not a ninja Schema: Schema wraps every row in an attribute getter, which
# made a 5,000-bar response four times slower. The rows are already dicts.
class BarOut(BaseModel):
    date: dt.date
    open: Optional[float]
    high: Optional[float]
    low: Optional[float]
    close: Optional[float]
    volume: Optional[int]
    adj_factor: float
    flags: int
    flag_labels: list[str]
    quarantined: bool


class RenamedFrom(Schema):
    symbol: str = Field(description="The code the listing traded under before")
    date: dt.date = Field(description="The first session under the newer code")


class PricesOut(Schema):
    symbol: str
    exchange: str
    currency: str
    adjusted: bool
    start: Optional[dt.date]
    end: Optional[dt.date]
    renamed_from: list[RenamedFrom] = Field(
        description="Codes this listing had before, newest first; without stitch=true their bars are not here",
    )
    stitched: bool = Field(description="Bars before each change come from the older code (stitch=true)")
    interval: str = Field(description="daily, or weekly: one bar per calendar week, dated by its last session")
    bars: list[BarOut]


class LatestOut(Schema):
    symbol: str
    exchange: str
    currency: str
    date: dt.date
    open: Optional[float]
    high: Optional[float]
    low: Optional[float]
    close: float
    volume: Optional[int]
    flags: int
    previous_date: Optional[dt.date]
    previous_close: Optional[float] = Field(
        description="Restated on the latest bar's share basis, so a split between the sessions is not a price move",
    )
    change: Optional[float]
    change_pct: Optional[float] = Field(description="Change in percent of the previous close (1.5 means +1.5%)")


class StepOut(Schema):
    """One step of a daily run: ingest, panels, lock (a wait for another run) or hook:<path>."""

    step: str
    status: str = Field(description="ok, partial, rate_limited, provider_error or failed")
    seconds: float
    detail: Any = Field(description="What the step did (counts, files written), or {error} when it failed")


class IngestRunOut(Schema):
    id: int
    kind: str = Field(description="bars, actions, membership, symbols, or daily (a whole daily chain)")
    provider: str
    status: str
    exchange: str = Field(description="Daily runs: the exchange (XASX, XNYS); empty otherwise")
    session: Optional[dt.date] = Field(description="Daily runs: the session they ran for")
    params: dict[str, Any]
    started_at: dt.datetime
    finished_at: Optional[dt.datetime]
    duration_seconds: Optional[float]
    symbols: int
    rows_read: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    rows_flagged: int
    rows_quarantined: int
    errors: list[Any]
    steps: list[StepOut] = Field(description="Daily runs: each step in the order run; empty otherwise")
    retry_at: Optional[dt.datetime]
    requested_by: Optional[str]

    @staticmethod
    def resolve_duration_seconds(run):
        return None if run.duration is None else run.duration.total_seconds()

    @staticmethod
    def resolve_requested_by(run):
        return run.requested_by.username if run.requested_by_id else None


class UniverseMemberOut(Schema):
    key: str
    symbol: str
    exchange: str
    name: str
    active: bool = Field(description="False once delisted; a delisted name is still a member of past dates")


class UniverseOut(Schema):
    code: str
    as_of: dt.date
    count: int
    members: list[UniverseMemberOut]


class RefreshIn(Schema):
    """POST /data/refresh: which exchange (default both) and session (default each one's latest closed)."""

    exchange: Optional[Literal["XASX", "XNYS"]] = None
    session: Optional[dt.date] = None

    @field_validator("exchange", mode="before")
    @classmethod
    def upper_exchange(cls, value):
        return (value.strip().upper() or None) if isinstance(value, str) else value


class RefreshOut(Schema):
    """The daily runs started, one per exchange; poll GET /data/runs/{id} for their steps."""

    runs: list[IngestRunOut]


class Message(Schema):
    detail: str


class AmbiguousSymbol(Schema):
    detail: str
    candidates: list[str]


class ValidationProblem(Schema):
    type: str
    loc: list[Any]
    msg: str


class ValidationErrorOut(Schema):
    """The 422 body: one entry per bad parameter, `loc` naming where it was (e.g. ["query", "start"])."""

    detail: list[ValidationProblem]
