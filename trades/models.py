"""The trade journal and the portfolio it belongs to, with bi-temporal history and daily snapshots.

Two times run through the journal (docs/portfolio.md): the market dates of each leg (valid time) and
the moment each version was recorded (knowledge time). Nothing is overwritten: a change to a trade is a
new TradeVersion, a cash movement is voided rather than deleted, so "what did we know at T" has an answer.
"""
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from .formats import plain

MONEY = {"max_digits": 20, "decimal_places": 6}
# The calendar a portfolio is marked to market on: its base currency's home exchange.
CALENDAR_OF_CURRENCY = {"AUD": "XASX", "USD": "XNYS"}


class Currency(models.TextChoices):
    AUD = "AUD", "Australian dollar"
    USD = "USD", "US dollar"


class PortfolioQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The portfolios `user` may see: their own; staff (the desk's admins) see every one."""
        return self if user.is_staff else self.filter(owner=user)

    def pick(self, text):
        """The portfolio `text` names among these: a number that is the id of one of them, else its name
        (`?portfolio=3` or `?portfolio=Alice US`); None when neither."""
        text = (text or "").strip()
        if text.isdigit():
            found = self.filter(pk=int(text)).first()
            if found is not None:
                return found
        return self.filter(name=text).first()


def no_portfolio(text):
    """What to say when PortfolioQuerySet.pick(text) found nothing."""
    text = (text or "").strip()
    if text.isdigit():
        return f"no portfolio with id {text} or named {text!r} that you can see"
    return f"no portfolio named {text!r} that you can see"


class Portfolio(models.Model):
    """A book of trades and cash in one base currency, owned by one trader."""

    name = models.CharField(max_length=100, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="portfolios")
    base_currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.AUD)
    starting_cash = models.DecimalField(**MONEY, default=0)
    inception_date = models.DateField(help_text="First day the portfolio is marked to market")
    benchmark = models.ForeignKey(
        "marketdata.Instrument", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Index the equity curve is compared with",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    snapshots_stale_from = models.DateField(
        null=True, blank=True, help_text="Snapshots from this day on wait to be recomputed (a back-dated change)",
    )

    objects = PortfolioQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def calendar(self):
        """The exchange whose sessions are the snapshot dates: XASX for AUD books, XNYS for USD books."""
        return CALENDAR_OF_CURRENCY[self.base_currency]

    def visible_to(self, user):
        return user.is_staff or self.owner_id == user.pk

    def figures_stamp(self):
        """A text that changes whenever the book's figures may: its settings, trades (every change is a new
        version with a later knowledge time), cash, stored snapshots, the market data (each ingest is a
        run, each review a correction) and the day. Five small aggregate queries; the overview caches its
        figures under it, so a change anywhere is seen on the next view and nothing else recomputes them."""
        from django.db.models import Count, Max
        from django.utils import timezone

        from marketdata.models import BarCorrection, IngestRun

        trades = self.trades.aggregate(n=Count("id"), t=Max("knowledge_time"))
        cash = self.cash_movements.aggregate(n=Count("id"), t=Max("created_at"), v=Max("voided_at"))
        snapshots = self.snapshots.aggregate(n=Count("id"), t=Max("computed_at"))
        runs = IngestRun.objects.aggregate(m=Max("id"), f=Max("finished_at"))  # a run's bars land before it ends
        data = (*runs.values(), BarCorrection.objects.aggregate(m=Max("id"))["m"])
        parts = (self.pk, self.name, self.base_currency, self.starting_cash, self.inception_date, self.benchmark_id,
                 self.snapshots_stale_from, *trades.values(), *cash.values(), *snapshots.values(), *data,
                 timezone.localdate())
        return "|".join(str(part) for part in parts)


class CashMovementQuerySet(models.QuerySet):
    def live(self):
        return self.filter(voided_at__isnull=True)

    def known_at(self, moment):
        """The movements as the journal stood at `moment`: recorded by then and not yet voided."""
        return self.filter(created_at__lte=moment).filter(Q(voided_at__isnull=True) | Q(voided_at__gt=moment))


class CashMovement(models.Model):
    """Cash in or out of a portfolio that is not a trade: deposits, withdrawals, dividends, fees.

    Deposits and withdrawals are external flows (not gains); dividends, fees and interest are part of
    the return. A wrong movement is voided (kept, with who and when), never deleted or edited.
    """

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        DIVIDEND = "dividend", "Dividend received"
        FEE = "fee", "Fee"
        INTEREST = "interest", "Interest"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="cash_movements")
    date = models.DateField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(**MONEY, help_text="In the portfolio's base currency; signed (+ in, - out)")
    instrument = models.ForeignKey("marketdata.Instrument", null=True, blank=True, on_delete=models.PROTECT)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, help_text="Knowledge time: when it was recorded")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    void_reason = models.CharField(max_length=200, blank=True)

    objects = CashMovementQuerySet.as_manager()

    # Flows in or out of the book: excluded from returns. The other kinds are income or costs.
    EXTERNAL = (Kind.DEPOSIT, Kind.WITHDRAWAL)

    class Meta:
        ordering = ["portfolio", "date", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(kind="deposit") | Q(amount__gt=0), name="cash_deposit_positive"),
            models.CheckConstraint(condition=~Q(kind="withdrawal") | Q(amount__lt=0), name="cash_withdrawal_negative"),
        ]

    def __str__(self):
        return f"{self.portfolio} {self.date} {self.kind} {plain(self.amount)}"

    @property
    def is_external(self):
        return self.kind in self.EXTERNAL


class TradeImport(models.Model):
    """A trade file applied to a portfolio: its name, the sha256 of its executions (services: date, action,
    symbol, numbers and trade id of every row, in any order or format), who, when, how many rows. The same
    executions again into the same portfolio are refused unless asked for (they would be booked twice)."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="imports")
    sha256 = models.CharField(max_length=64)
    name = models.CharField(max_length=255, blank=True)
    rows = models.PositiveIntegerField()
    imported_at = models.DateTimeField(auto_now_add=True)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        ordering = ["-imported_at", "-id"]
        indexes = [models.Index(fields=["portfolio", "sha256"], name="tradeimport_file_idx")]

    def __str__(self):
        return f"{self.name or 'a file'} into {self.portfolio} ({self.rows} rows)"


class Direction(models.TextChoices):
    LONG = "long", "Long"
    SHORT = "short", "Short"


class TradeStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


class TradeFields(models.Model):
    """The fields of the old `trades` table, shared by the current row and each of its versions."""

    symbol = models.CharField(max_length=32)
    instrument = models.ForeignKey("marketdata.Instrument", on_delete=models.PROTECT, related_name="+")
    direction = models.CharField(max_length=5, choices=Direction.choices, default=Direction.LONG)
    quantity = models.DecimalField(**MONEY, help_text="Shares opened on the entry date")
    entry_price = models.DecimalField(**MONEY)
    entry_date = models.DateField()
    entry_commission = models.DecimalField(**MONEY, default=0, help_text="Commission of the entry leg")
    closed_quantity = models.DecimalField(
        **MONEY, default=0, help_text="Shares closed by the exits, on the entry's share basis (splits undone)",
    )
    exit_price = models.DecimalField(**MONEY, null=True, blank=True,
                                     help_text="Average price of the exits, weighted by quantity")
    exit_date = models.DateField(null=True, blank=True, help_text="Date of the last exit")
    fees = models.DecimalField(**MONEY, default=0, help_text="Commission on every leg, in the trade's currency")
    pnl = models.DecimalField(**MONEY, null=True, blank=True,
                              help_text="Realised on the closed quantity, after fees, in the trade's currency")
    pnl_pct = models.FloatField(null=True, blank=True, help_text="Realised P&L / entry notional of the closed quantity")
    pnl_base = models.DecimalField(**MONEY, null=True, blank=True,
                                   help_text="Realised P&L in the portfolio's currency, each leg at its day's FX rate")
    pnl_base_missing = models.CharField(max_length=200, blank=True,
                                        help_text="Why pnl_base is empty (no FX rate on a leg's date)")
    strategy_name = models.CharField(max_length=100, blank=True)
    signal_ref = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=9, choices=TradeStatus.choices, default=TradeStatus.OPEN)
    notes = models.TextField(blank=True)
    event_time = models.DateTimeField(help_text="When it happened in the market")

    class Meta:
        abstract = True


class TradeQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status=TradeStatus.OPEN)

    def live(self):
        """Trades that count: open or closed, not cancelled."""
        return self.exclude(status=TradeStatus.CANCELLED)

    def visible_to(self, user):
        return self if user.is_staff else self.filter(portfolio__owner=user)


class Trade(TradeFields):
    """A position taken in the market, as currently known. Every change also lands in TradeVersion."""

    trade_id = models.CharField(max_length=40, unique=True, help_text="The desk's reference (old system's id)")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.PROTECT, related_name="trades")
    knowledge_time = models.DateTimeField(help_text="When the current version was recorded")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TradeQuerySet.as_manager()

    class Meta:
        ordering = ["-entry_date", "-id"]
        indexes = [
            models.Index(fields=["portfolio", "status"], name="trade_portfolio_status_idx"),
            # The blotter: a portfolio's trades newest first, a page at a time; and one symbol's.
            models.Index(fields=["portfolio", "-entry_date", "-id"], name="trade_blotter_idx"),
            models.Index(fields=["portfolio", "symbol", "-entry_date", "-id"], name="trade_symbol_blotter_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="trade_quantity_positive"),
            models.CheckConstraint(condition=Q(exit_date__isnull=True) | Q(exit_date__gte=models.F("entry_date")),
                                   name="trade_exit_not_before_entry"),
        ]

    def __str__(self):
        return f"{self.trade_id} {self.direction} {plain(self.quantity)} {self.symbol}"

    @property
    def is_open(self):
        return self.status == TradeStatus.OPEN

    @property
    def open_quantity(self):
        """Shares still open, on the entry's share basis (none once cancelled)."""
        if self.status == TradeStatus.CANCELLED:
            return Decimal(0)
        return self.quantity - self.closed_quantity


class ChangeKind(models.TextChoices):
    CREATED = "created", "Recorded"
    IMPORTED = "imported", "Imported"
    EDITED = "edited", "Edited"
    CLOSED = "closed", "Exit recorded"
    CANCELLED = "cancelled", "Cancelled"
    CORRECTED = "corrected", "Corrected by an admin"


class TradeVersionQuerySet(models.QuerySet):
    def known_at(self, moment):
        """The version of each trade that was current at `moment` (trades recorded later have none)."""
        return self.filter(knowledge_time__lte=moment).filter(
            Q(superseded_at__isnull=True) | Q(superseded_at__gt=moment))


class TradeVersion(TradeFields):
    """One version of a trade as it was known from `knowledge_time` until `superseded_at`.

    Rows are never edited, except that the next version stamps `superseded_at`; each carries its own
    exits (TradeExit), so any version can be read back whole.
    """

    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    knowledge_time = models.DateTimeField()
    superseded_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    change_kind = models.CharField(max_length=9, choices=ChangeKind.choices, default=ChangeKind.CREATED)
    change_reason = models.CharField(max_length=200, blank=True)

    objects = TradeVersionQuerySet.as_manager()

    class Meta:
        ordering = ["trade", "version"]
        constraints = [models.UniqueConstraint(fields=["trade", "version"], name="tradeversion_uniq")]
        indexes = [models.Index(fields=["knowledge_time"], name="tradeversion_known_idx")]

    def __str__(self):
        return f"{self.trade.trade_id} v{self.version}"

    @property
    def open_quantity(self):
        if self.status == TradeStatus.CANCELLED:
            return Decimal(0)
        return self.quantity - self.closed_quantity


class TradeExit(models.Model):
    """One exit leg of a trade version: shares sold (long) or bought back (short) on a day, as executed.

    After a split the quantity and price are the post-split ones the broker reports; the journal undoes
    the split when it compares them with the entry (docs/portfolio.md).
    """

    version = models.ForeignKey(TradeVersion, on_delete=models.CASCADE, related_name="exits")
    date = models.DateField()
    quantity = models.DecimalField(**MONEY)
    price = models.DecimalField(**MONEY)
    commission = models.DecimalField(**MONEY, default=0)

    class Meta:
        ordering = ["version", "date", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="tradeexit_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="tradeexit_price_positive"),
            models.CheckConstraint(condition=Q(commission__gte=0), name="tradeexit_commission_not_negative"),
        ]

    def __str__(self):
        return f"{self.version} exit {self.date} {plain(self.quantity)} @ {plain(self.price)}"


class PortfolioSnapshot(models.Model):
    """A portfolio marked to market at one day's close (the old portfolio_snapshots table)."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="snapshots")
    date = models.DateField()
    total_value = models.DecimalField(**MONEY, null=True, blank=True, help_text="Cash + invested; empty when unvalued")
    cash = models.DecimalField(**MONEY, null=True, blank=True)
    invested = models.DecimalField(**MONEY, null=True, blank=True,
                                   help_text="Market value of open positions (shorts negative)")
    flows = models.DecimalField(**MONEY, default=0, help_text="Deposits less withdrawals counted on this day")
    unvalued_reason = models.CharField(max_length=300, blank=True,
                                       help_text="Why the day has no value (a missing FX rate or price)")
    daily_return = models.FloatField(null=True, blank=True, help_text="Time-weighted: flows are not gains")
    cumulative_return = models.FloatField(null=True, blank=True)
    volatility_21d = models.FloatField(null=True, blank=True, help_text="Annualised, ddof=1, x sqrt(252)")
    sharpe_21d = models.FloatField(null=True, blank=True, help_text="Annualised over the last 21 sessions")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portfolio", "date"]
        constraints = [models.UniqueConstraint(fields=["portfolio", "date"], name="snapshot_portfolio_date_uniq")]

    def __str__(self):
        return f"{self.portfolio} {self.date}"
