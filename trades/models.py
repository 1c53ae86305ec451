"""The trade journal and the portfolio it belongs to, with bi-temporal history and daily snapshots."""
from django.conf import settings
from django.db import models
from django.db.models import Q

MONEY = {"max_digits": 20, "decimal_places": 6}


class Currency(models.TextChoices):
    AUD = "AUD", "Australian dollar"
    USD = "USD", "US dollar"


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

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CashMovement(models.Model):
    """Cash in or out of a portfolio that is not a trade: deposits, withdrawals, dividends, fees."""

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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["portfolio", "date", "id"]

    def __str__(self):
        return f"{self.portfolio} {self.date} {self.kind} {self.amount}"


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
    quantity = models.DecimalField(**MONEY)
    entry_price = models.DecimalField(**MONEY)
    entry_date = models.DateField()
    exit_price = models.DecimalField(**MONEY, null=True, blank=True)
    exit_date = models.DateField(null=True, blank=True)
    fees = models.DecimalField(**MONEY, default=0, help_text="Commission on both legs, in the trade's currency")
    pnl = models.DecimalField(**MONEY, null=True, blank=True, help_text="Realised, after fees")
    pnl_pct = models.FloatField(null=True, blank=True, help_text="Realised P&L / entry notional")
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


class Trade(TradeFields):
    """A position taken in the market, as currently known. Every change also lands in TradeVersion."""

    trade_id = models.CharField(max_length=40, unique=True, help_text="The desk's reference (old system's id)")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.PROTECT, related_name="trades")
    knowledge_time = models.DateTimeField(help_text="When the current version was recorded")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TradeQuerySet.as_manager()

    class Meta:
        ordering = ["-entry_date", "-id"]
        indexes = [models.Index(fields=["portfolio", "status"], name="trade_portfolio_status_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="trade_quantity_positive"),
            models.CheckConstraint(condition=Q(exit_date__isnull=True) | Q(exit_date__gte=models.F("entry_date")),
                                   name="trade_exit_not_before_entry"),
        ]

    def __str__(self):
        return f"{self.trade_id} {self.direction} {self.quantity} {self.symbol}"

    @property
    def is_open(self):
        return self.status == TradeStatus.OPEN


class TradeVersion(TradeFields):
    """One version of a trade as it was known from `knowledge_time` until `superseded_at`."""

    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    knowledge_time = models.DateTimeField()
    superseded_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    change_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["trade", "version"]
        constraints = [models.UniqueConstraint(fields=["trade", "version"], name="tradeversion_uniq")]

    def __str__(self):
        return f"{self.trade.trade_id} v{self.version}"


class PortfolioSnapshot(models.Model):
    """A portfolio marked to market at one day's close (the old portfolio_snapshots table)."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="snapshots")
    date = models.DateField()
    total_value = models.DecimalField(**MONEY)
    cash = models.DecimalField(**MONEY)
    invested = models.DecimalField(**MONEY)
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
