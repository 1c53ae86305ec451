"""The journal's page forms. They parse what a person typed; the services decide what the journal accepts,
and their JournalError lands next to the field it names (inline validation)."""
import datetime as dt
from decimal import Decimal

from django import forms
from django.utils import timezone

from marketdata.models import AssetType, Instrument

from .formats import parse_date, plain
from .models import CashMovement, Currency, Direction, Portfolio

DATE = {"type": "date"}
MONEY = {"step": "any", "min": "0", "inputmode": "decimal"}


def date_input():
    return forms.DateInput(attrs=DATE, format="%Y-%m-%d")


class IsoDateField(forms.DateField):
    """A date typed as YYYY-MM-DD only, as the import reads it (a browser's date input sends that form)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", date_input())
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return parse_date(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


class DecimalInput(forms.NumberInput):
    """A number input that shows a Decimal as typed: 60, 99.5, 100000 (str() gives 6E+1 or 200.000000,
    which a browser's number input shows as such or not at all)."""

    def format_value(self, value):
        if isinstance(value, (Decimal, int)) and not isinstance(value, bool):
            return plain(value)
        return super().format_value(value)


class JournalForm(forms.Form):
    """A form that can take a services.JournalError: each problem on its field if the form has it, else
    on top."""

    # Service field -> form field, where they differ.
    FIELD_NAMES = {}

    def add_journal_error(self, exc, *, skip_fields_with_errors=False):
        for name, problem in exc.problems:
            field = self.FIELD_NAMES.get(name, name)
            if field in self.fields:
                if skip_fields_with_errors and field in self.errors:
                    continue  # the form's own message about it (e.g. "Enter a number.") stays
                self.add_error(field, problem)
            else:
                self.add_error(None, f"{name}: {problem}")


class PortfolioForm(JournalForm):
    name = forms.CharField(max_length=100)
    base_currency = forms.ChoiceField(choices=Currency.choices, initial=Currency.AUD,
                                      help_text="Snapshots follow its exchange's sessions: ASX for AUD, NYSE for USD")
    starting_cash = forms.DecimalField(min_value=0, max_digits=20, decimal_places=6, initial=0,
                                       widget=DecimalInput(attrs=MONEY))
    inception_date = IsoDateField(help_text="The first day the book is marked to market")
    benchmark = forms.ModelChoiceField(
        queryset=Instrument.objects.filter(asset_type__in=[AssetType.INDEX, AssetType.ETF]).order_by("exchange", "symbol"),
        required=False, empty_label="None", help_text="An index or ETF the equity curve is drawn against")


class TradeForm(JournalForm):
    """Open a trade: a quantity, or a percentage of the book's equity sized into whole shares."""

    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none(), empty_label=None)
    symbol = forms.CharField(max_length=40, widget=forms.TextInput(attrs={"placeholder": "AAPL, XASX:BHP or BHP.AX",
                                                                          "autocapitalize": "characters"}))
    direction = forms.ChoiceField(choices=Direction.choices, initial=Direction.LONG)
    quantity = forms.DecimalField(required=False, max_digits=20, decimal_places=6,
                                  widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    target_percent = forms.DecimalField(
        required=False, max_digits=9, decimal_places=4, label="or % of equity",
        help_text="Sizes the trade in whole shares at the entry price from the book's value the session before",
        widget=DecimalInput(attrs={"step": "any", "min": "0", "max": "100"}))
    entry_date = IsoDateField()
    entry_price = forms.DecimalField(max_digits=20, decimal_places=6,
                                     widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    entry_commission = forms.DecimalField(max_digits=20, decimal_places=6, initial=0, required=False,
                                          label="Commission", widget=DecimalInput(attrs=MONEY))
    strategy_name = forms.CharField(max_length=100, required=False, label="Strategy")
    signal_ref = forms.CharField(max_length=100, required=False, label="Signal reference")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    FIELD_NAMES = {"target_weight": "target_percent"}

    def __init__(self, *args, portfolios=None, **kwargs):
        super().__init__(*args, **kwargs)
        if portfolios is not None:
            self.fields["portfolio"].queryset = portfolios
        self.fields["entry_date"].widget.attrs["max"] = timezone.localdate().isoformat()

    def clean(self):
        data = super().clean()
        if data.get("quantity") in (None, "") and data.get("target_percent") in (None, ""):
            self.add_error("quantity", "Give a quantity, or a % of equity to size it.")
        if data.get("quantity") not in (None, "") and data.get("target_percent") not in (None, ""):
            self.add_error("target_percent", "Give a quantity or a % of equity, not both.")
        return data


class TradeEditForm(JournalForm):
    """Edit a trade's entry and notes; its exits are the formset beside it. The reason goes in the history."""

    symbol = forms.CharField(max_length=40)
    direction = forms.ChoiceField(choices=Direction.choices)
    quantity = forms.DecimalField(max_digits=20, decimal_places=6,
                                  widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    entry_date = IsoDateField()
    entry_price = forms.DecimalField(max_digits=20, decimal_places=6,
                                     widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    entry_commission = forms.DecimalField(max_digits=20, decimal_places=6, label="Commission",
                                          widget=DecimalInput(attrs=MONEY))
    strategy_name = forms.CharField(max_length=100, required=False, label="Strategy")
    signal_ref = forms.CharField(max_length=100, required=False, label="Signal reference")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    reason = forms.CharField(max_length=200, required=False, help_text="Kept in the trade's history")


class ExitForm(forms.Form):
    date = IsoDateField()
    quantity = forms.DecimalField(max_digits=20, decimal_places=6, widget=DecimalInput(attrs=MONEY))
    price = forms.DecimalField(max_digits=20, decimal_places=6, widget=DecimalInput(attrs=MONEY))
    commission = forms.DecimalField(max_digits=20, decimal_places=6, initial=0, required=False,
                                    widget=DecimalInput(attrs=MONEY))


ExitFormSet = forms.formset_factory(ExitForm, extra=1, can_delete=True)


class CloseForm(JournalForm):
    """Record an exit: all the open quantity by default, or part of it."""

    exit_date = IsoDateField(label="Date")
    exit_quantity = forms.DecimalField(max_digits=20, decimal_places=6, required=False, label="Quantity",
                                       help_text="Leave empty to close everything still open",
                                       widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    exit_price = forms.DecimalField(max_digits=20, decimal_places=6, label="Price",
                                    widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    exit_commission = forms.DecimalField(max_digits=20, decimal_places=6, initial=0, required=False,
                                         label="Commission", widget=DecimalInput(attrs=MONEY))
    reason = forms.CharField(max_length=200, required=False)


class ClosePositionForm(JournalForm):
    """Sell (or buy back) shares of a position; the journal matches them first in, first out."""

    date = IsoDateField()
    quantity = forms.DecimalField(max_digits=20, decimal_places=6,
                                  widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    price = forms.DecimalField(max_digits=20, decimal_places=6,
                               widget=DecimalInput(attrs={**MONEY, "min": "0.000001"}))
    commission = forms.DecimalField(max_digits=20, decimal_places=6, initial=0, required=False,
                                    widget=DecimalInput(attrs=MONEY))
    reason = forms.CharField(max_length=200, required=False)


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False,
                             help_text="Why (kept in the history; the trade is never deleted)")


class CashForm(JournalForm):
    date = IsoDateField()
    kind = forms.ChoiceField(choices=CashMovement.Kind.choices)
    amount = forms.DecimalField(max_digits=20, decimal_places=6, widget=DecimalInput(attrs={"step": "any"}),
                                help_text="Positive; the kind gives the sign (interest: negative when paid)")
    symbol = forms.CharField(max_length=40, required=False, help_text="For a dividend: the instrument that paid it")
    notes = forms.CharField(max_length=500, required=False)


class ImportForm(forms.Form):
    portfolio = forms.ModelChoiceField(queryset=Portfolio.objects.none(), empty_label=None)
    file = forms.FileField(help_text="CSV, UTF-8 (with or without a byte-order mark)")
    again = forms.BooleanField(required=False, label="Import it even if its executions are already in the journal",
                               help_text="Only when they really happened twice; otherwise a file (or rows) "
                                         "imported before is refused")

    def __init__(self, *args, portfolios=None, **kwargs):
        super().__init__(*args, **kwargs)
        if portfolios is not None:
            self.fields["portfolio"].queryset = portfolios
