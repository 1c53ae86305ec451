"""Market data: instruments, their daily bars, corporate actions, index membership and ingest runs."""
import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Count, Max, Min, Q

from . import symbology


class Exchange(models.TextChoices):
    """ISO 10383 market identifier codes of the venues the desk trades or benchmarks against."""

    XASX = "XASX", "ASX (Australian Securities Exchange)"
    XNYS = "XNYS", "NYSE"
    XNAS = "XNAS", "Nasdaq"
    ARCX = "ARCX", "NYSE Arca"
    BATS = "BATS", "Cboe BZX"
    FX = "FX", "Foreign exchange (no venue)"


# The calendar each venue's bars are dated in (exchange-calendars names).
CALENDAR_OF = {"XASX": "XASX", "XNYS": "XNYS", "XNAS": "XNYS", "ARCX": "XNYS", "BATS": "XNYS"}
US_VENUES = ("XNYS", "XNAS", "ARCX", "BATS")
CURRENCY_OF = {"XASX": "AUD", "XNYS": "USD", "XNAS": "USD", "ARCX": "USD", "BATS": "USD"}


class AssetType(models.TextChoices):
    EQUITY = "equity", "Equity"
    ETF = "etf", "ETF"
    INDEX = "index", "Index"
    FX = "fx", "FX pair"
    FUND = "fund", "Fund"


class InstrumentQuerySet(models.QuerySet):
    def search(self, text):
        text = (text or "").strip()
        if not text:
            return self
        return self.filter(Q(symbol__icontains=text) | Q(name__icontains=text))

    def with_coverage(self):
        """Annotate first/last bar date and bar count (the instrument list and coverage pages)."""
        return self.annotate(first_date=Min("bars__date"), last_date=Max("bars__date"), bar_count=Count("bars"))

    def with_last_bar(self):
        """Annotate each instrument's last bar date, None without bars (the data coverage page)."""
        return self.annotate(last_date=Max("bars__date"))

    def with_renamed_on(self):
        """Annotate `renamed_on`: the latest SymbolChange into the symbol on its exchange, None if never."""
        latest = SymbolChange.objects.filter(exchange=models.OuterRef("exchange"), new_symbol=models.OuterRef("symbol"))
        return self.annotate(renamed_on=models.Subquery(latest.order_by("-date").values("date")[:1]))

    def listings(self, keys):
        """{(symbol, exchange): (id, name)} of the stored instrument each key means; absent keys are left out.

        A key matches its own listing; a key on a US venue (XNYS, XNAS, ARCX, BATS) with no listing of
        its own matches the symbol's one listing on another US venue. A ticker is unique across the US
        tape, so a file that says nothing of the venue (the S&P 500 file, read as XNYS) lands on Apple's
        Nasdaq listing instead of creating a second Apple.
        """
        keys = set(keys)
        symbols = sorted({symbol for symbol, _ in keys})
        stored = {}
        for start in range(0, len(symbols), 500):
            for pk, symbol, exchange, name in self.filter(symbol__in=symbols[start:start + 500]).values_list(
                    "pk", "symbol", "exchange", "name"):
                stored[(symbol, exchange)] = (pk, name)
        found = {}
        for symbol, exchange in keys:
            if (symbol, exchange) in stored:
                found[(symbol, exchange)] = stored[(symbol, exchange)]
            elif exchange in US_VENUES:
                others = [stored[(symbol, venue)] for venue in US_VENUES if (symbol, venue) in stored]
                if len(others) == 1:
                    found[(symbol, exchange)] = others[0]
        return found

    # On the QuerySet (and so on the manager too), so an annotated queryset can resolve a symbol.
    def resolve(self, text, exchange=None):
        """The one instrument a user means by `text`.

        Accepts `BHP` (unique symbol), `XASX:BHP` or `ASX:BHP`, Yahoo-style `BHP.AX` or `BRK-B`, and any
        case or padding. Raises Instrument.DoesNotExist (also for a suffix that contradicts the exchange),
        or Instrument.MultipleObjectsReturned when a bare symbol is listed on several exchanges (BHP on
        XASX and on XNYS are different series).
        """
        try:
            symbol, exchange = parse_symbol(text, exchange)
        except symbology.SymbolError as exc:
            raise self.model.DoesNotExist(str(exc)) from exc
        qs = self.filter(symbol=symbol)
        if exchange:
            qs = qs.filter(exchange=exchange)
        found = list(qs[:2])
        if not found:
            where = f" on {exchange}" if exchange else ""
            raise self.model.DoesNotExist(f"unknown symbol {symbol!r}{where}")
        if len(found) > 1:
            raise self.model.MultipleObjectsReturned(
                f"symbol {symbol!r} is listed on several exchanges; say which, e.g. XASX:{symbol}"
            )
        return found[0]


class InstrumentManager(models.Manager.from_queryset(InstrumentQuerySet)):
    """Instrument.objects: every InstrumentQuerySet method, `resolve` included."""


def parse_symbol(text, exchange=None):
    """Normalise a user's symbol: ' bhp.ax ' -> ('BHP', 'XASX'); 'NYSE:brk-b' -> ('BRK.B', 'XNYS').

    The same parser the providers use (marketdata.symbology), so every spelling the ingest accepts
    resolves in the pages and the API. Raises SymbolError when a suffix contradicts the exchange given.
    """
    request = symbology.parse(text, exchange)
    return request.symbol, (request.exchange or None)


class Instrument(models.Model):
    """A tradable (or benchmark) series: one symbol on one exchange, in one currency."""

    symbol = models.CharField(max_length=32, help_text="The exchange's own code, e.g. BHP, BRK.B")
    exchange = models.CharField(max_length=8, choices=Exchange.choices)
    currency = models.CharField(max_length=3, help_text="ISO 4217, e.g. AUD")
    name = models.CharField(max_length=200, blank=True)
    sector = models.CharField(max_length=100, blank=True)
    asset_type = models.CharField(max_length=8, choices=AssetType.choices, default=AssetType.EQUITY)
    active = models.BooleanField(default=True, help_text="Still listed; only evidence (a delisting) clears it")
    listed_on = models.DateField(null=True, blank=True)
    delisted_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InstrumentManager()

    class Meta:
        ordering = ["symbol", "exchange"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "exchange"], name="instrument_symbol_exchange_uniq"),
            models.CheckConstraint(
                condition=Q(delisted_on__isnull=True) | Q(listed_on__isnull=True) | Q(delisted_on__gte=models.F("listed_on")),
                name="instrument_delisted_after_listed",
            ),
        ]

    def __str__(self):
        return f"{self.symbol} ({self.exchange})"

    @property
    def calendar_name(self):
        return CALENDAR_OF.get(self.exchange)

    @property
    def key(self):
        """The unambiguous URL/API key, e.g. 'XASX:BHP'."""
        return f"{self.exchange}:{self.symbol}"


class PriceBarQuerySet(models.QuerySet):
    def between(self, start=None, end=None):
        qs = self
        if start:
            qs = qs.filter(date__gte=start)
        if end:
            qs = qs.filter(date__lte=end)
        return qs

    def clean(self):
        """Bars fit for analytics: quarantined ones are left out."""
        return self.filter(quarantined=False)

    def reused_codes(self, exchange, instrument_ids=None):
        """{instrument id: date} of each instrument of `exchange` whose code another company took over:
        the date of its latest quarantined SYMBOL_REUSED bar. Analytics leave out the bars before it (the
        other company's), so no return spans the two; an accepted flag (a relisting) cuts nothing."""
        from quant.quality import SYMBOL_REUSED

        bars = self.order_by().filter(instrument__exchange=exchange, quarantined=True)
        if instrument_ids is not None:
            bars = bars.filter(instrument_id__in=instrument_ids)
        rows = (bars.annotate(reused=models.F("flags").bitand(SYMBOL_REUSED)).filter(reused__gt=0)
                .values("instrument_id").annotate(day=Max("date")).values_list("instrument_id", "day"))
        return dict(rows)

    def flagged(self):
        return self.exclude(flags=0)

    def coverage_by_exchange(self):
        """One row per exchange: exchange, first_date, last_date, bars, flagged_bars, quarantined_bars."""
        return (
            self.order_by()
            .values(exchange=models.F("instrument__exchange"))
            .annotate(
                first_date=Min("date"),
                last_date=Max("date"),
                bars=Count("id"),
                flagged_bars=Count("id", filter=~Q(flags=0)),
                quarantined_bars=Count("id", filter=Q(quarantined=True)),
            )
            .order_by("exchange")
        )

    def flag_counts_by_exchange(self):
        """(exchange, flags bitmask, bars, quarantined bars) for each distinct bitmask of flagged bars."""
        return (
            self.flagged()
            .order_by()
            .values_list("instrument__exchange", "flags")
            .annotate(bars=Count("id"), quarantined_bars=Count("id", filter=Q(quarantined=True)))
            .order_by("instrument__exchange", "flags")
        )


class PriceBar(models.Model):
    """One instrument's daily bar, dated in its exchange's calendar day, raw prices as received.

    Adjusted prices are raw x adj_factor (splits and dividends after this date). A price the provider
    sent as zero or negative is stored as missing (NULL) and flagged, never used as a price.
    """

    # No separate index: the unique (instrument, date) index serves every per-instrument lookup.
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="bars", db_index=False)
    date = models.DateField(help_text="Session date in the exchange's own time zone")
    open = models.FloatField(null=True, blank=True)
    high = models.FloatField(null=True, blank=True)
    low = models.FloatField(null=True, blank=True)
    close = models.FloatField(null=True, blank=True)
    volume = models.BigIntegerField(null=True, blank=True)
    adj_factor = models.FloatField(default=1.0, help_text="Adjusted price = raw price x factor")
    source = models.CharField(max_length=16)
    flags = models.IntegerField(default=0, help_text="Bitmask of quality reasons (quant.quality)")
    quarantined = models.BooleanField(default=False, help_text="Left out of analytics until reviewed")
    reviewed = models.BooleanField(
        default=False, db_default=False, help_text="A person accepted or fixed this bar (see its corrections); ingests keep their values")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PriceBarQuerySet.as_manager()

    class Meta:
        ordering = ["instrument", "date"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "date"], name="pricebar_instrument_date_uniq"),
        ]
        # Newest bars first across instruments (the admin's changelist and "latest session" queries); and
        # the flagged bars alone (about 1 in 2,000), which the data page lists and counts on every view.
        indexes = [
            models.Index(fields=["date"], name="pricebar_date_idx"),
            models.Index(fields=["-quarantined", "-date"], condition=~Q(flags=0), name="pricebar_flagged_idx"),
        ]

    def __str__(self):
        return f"{self.instrument.symbol} {self.date}"

    @property
    def adj_close(self):
        return None if self.close is None else self.close * self.adj_factor

    @property
    def flag_labels(self):
        from quant.flags import describe_flags

        return describe_flags(self.flags)


class CorporateAction(models.Model):
    """A split or cash dividend, effective on its ex-date; the source of adjustment factors."""

    class Kind(models.TextChoices):
        SPLIT = "split", "Split / consolidation"
        DIVIDEND = "dividend", "Cash dividend"

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    ex_date = models.DateField()
    ratio = models.FloatField(null=True, blank=True, help_text="Split: new shares per old share (7 for 7:1, 0.1 for 1:10)")
    amount = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True, help_text="Dividend per share")
    source = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["instrument", "ex_date"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "kind", "ex_date"], name="action_instrument_kind_date_uniq"),
            models.CheckConstraint(
                condition=(Q(kind="split", ratio__gt=0) | Q(kind="dividend", amount__gte=0)),
                name="action_has_its_value",
            ),
        ]

    def __str__(self):
        value = f"x{self.ratio:g}" if self.kind == self.Kind.SPLIT else f"{self.amount}"
        return f"{self.instrument.symbol} {self.kind} {self.ex_date} {value}"


class IndexMembershipQuerySet(models.QuerySet):
    def as_of(self, day):
        """Intervals that include `day` (start inclusive, end exclusive; open end = still a member)."""
        return self.filter(start__lte=day).filter(Q(end__isnull=True) | Q(end__gt=day))


class IndexMembership(models.Model):
    """An instrument was a member of an index from `start` (inclusive) until `end` (exclusive)."""

    index_code = models.CharField(max_length=16, help_text="e.g. SP500, ASX300")
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="memberships")
    start = models.DateField()
    end = models.DateField(null=True, blank=True, help_text="Empty while still a member")

    objects = IndexMembershipQuerySet.as_manager()

    class Meta:
        ordering = ["index_code", "instrument", "start"]
        constraints = [
            models.UniqueConstraint(fields=["index_code", "instrument", "start"], name="membership_uniq"),
            models.CheckConstraint(condition=Q(end__isnull=True) | Q(end__gt=models.F("start")), name="membership_end_after_start"),
        ]

    def __str__(self):
        return f"{self.index_code}: {self.instrument.symbol} {self.start}..{self.end or ''}"


class IngestRunQuerySet(models.QuerySet):
    def close_interrupted(self, now=None):
        """Mark failed the runs still "running" after settings.INGEST_MAX_SECONDS: their process was killed
        (a Lambda timeout, a restart, PostgreSQL going away) and will never say how it ended. What they
        committed is kept; a rerun fetches again and stores each bar once. Returns how many were closed."""
        from django.utils import timezone

        now = now or timezone.now()
        limit = settings.INGEST_MAX_SECONDS
        error = (f"interrupted: still running after {limit // 60} minutes, so its process is gone (a Lambda "
                 f"timeout, a restart); what it had committed is kept, and running it again is safe")
        return self.filter(status=IngestRun.Status.RUNNING, started_at__lt=now - dt.timedelta(seconds=limit)).update(
            status=IngestRun.Status.FAILED, finished_at=now, errors=[error])


class IngestRun(models.Model):
    """One ingest: which provider and arguments, when, how it ended and what it changed.

    `kind` says what was loaded (bars, corporate actions, memberships, symbol changes) or that the row
    is a whole daily chain for one exchange and session (`daily`), whose steps are in `steps`.
    """

    class Kind(models.TextChoices):
        BARS = "bars", "Daily bars"
        ACTIONS = "actions", "Corporate actions"
        MEMBERSHIP = "membership", "Index membership"
        SYMBOLS = "symbols", "Symbol changes and delistings"
        DAILY = "daily", "Daily chain"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        PARTIAL = "partial", "Partial success"
        RATE_LIMITED = "rate_limited", "Rate limited, retry scheduled"
        PROVIDER_ERROR = "provider_error", "Provider error"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BARS)
    provider = models.CharField(max_length=16)
    params = models.JSONField(default=dict, blank=True, help_text="Arguments as given (path, symbols, dates)")
    exchange = models.CharField(max_length=8, blank=True, help_text="Daily chain: the exchange it ran for")
    session = models.DateField(null=True, blank=True, help_text="Daily chain: the session it ran for")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    symbols = models.IntegerField(default=0, help_text="Instruments touched")
    rows_read = models.IntegerField(default=0)
    rows_inserted = models.IntegerField(default=0)
    rows_updated = models.IntegerField(default=0)
    rows_unchanged = models.IntegerField(default=0)
    rows_flagged = models.IntegerField(default=0)
    rows_quarantined = models.IntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="Messages naming file, row, column or symbol")
    steps = models.JSONField(default=list, blank=True,
                             help_text="Daily chain: [{step, status, seconds, detail}] in the order run")
    retry_at = models.DateTimeField(null=True, blank=True, help_text="Rate limited: when the retry is due")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    objects = IngestRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["-started_at"], name="ingestrun_started_idx"),
            models.Index(fields=["kind", "exchange", "session"], name="ingestrun_daily_idx"),
        ]

    def __str__(self):
        return f"{self.provider} #{self.pk} {self.status}"

    @property
    def duration(self):
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class BarCorrection(models.Model):
    """One reviewed change to a bar: accepted as is, fixed by hand, or dropped; the old values are kept.

    Rows are never edited or deleted: the history of a bar is its corrections in order. A dropped bar's
    corrections survive it (instrument and date are stored, the bar link becomes NULL).
    """

    class Action(models.TextChoices):
        ACCEPT = "accept", "Accepted as is"
        FIX = "fix", "Fixed by hand"
        DROP = "drop", "Dropped"
        RESTORE = "restore", "Provider value restored"

    bar = models.ForeignKey(PriceBar, null=True, blank=True, on_delete=models.SET_NULL, related_name="corrections")
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="corrections")
    date = models.DateField()
    action = models.CharField(max_length=8, choices=Action.choices)
    old_values = models.JSONField(help_text="open/high/low/close/volume/adj_factor/flags/quarantined before")
    new_values = models.JSONField(default=dict, blank=True, help_text="The same fields after (empty for a drop)")
    reason = models.TextField(blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["instrument", "date"], name="barcorrection_bar_idx")]

    def __str__(self):
        return f"{self.instrument.symbol} {self.date} {self.action}"


class SymbolChange(models.Model):
    """On `date` the listing traded as `old_symbol` became `new_symbol` on the same exchange (a rename).

    The symbol master: history stored under the old code belongs to the same company, so a series asked
    for by its new code can be stitched (or at least labelled "renamed from") instead of looking new.
    """

    exchange = models.CharField(max_length=8, choices=Exchange.choices)
    old_symbol = models.CharField(max_length=32)
    new_symbol = models.CharField(max_length=32)
    date = models.DateField(help_text="First session under the new symbol")
    old_name = models.CharField(max_length=200, blank=True)
    new_name = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=32)

    class Meta:
        ordering = ["exchange", "new_symbol", "date"]
        constraints = [
            models.UniqueConstraint(fields=["exchange", "old_symbol", "new_symbol", "date"], name="symbolchange_uniq"),
        ]
        indexes = [models.Index(fields=["exchange", "new_symbol"], name="symbolchange_new_idx")]

    def __str__(self):
        return f"{self.exchange}: {self.old_symbol} -> {self.new_symbol} on {self.date}"
