"""`manage.py import_trades FILE [--portfolio NAME]`: load a trade file into a portfolio, all rows or none."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from trades.errors import ImportRejected
from trades.models import Portfolio
from trades.services import import_trades


class Command(BaseCommand):
    help = ("Import executions and cash movements from a CSV file (docs/journal.md). Atomic: a bad row "
            "rejects the file, naming the row and the reason.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file: date, action, symbol, quantity, price, commission, amount, ...")
        parser.add_argument("--portfolio", help="Portfolio name (needed when there are several)")
        parser.add_argument("--again", action="store_true",
                            help="Import even if the file (or some rows) is already in the portfolio's journal")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        portfolio = pick(options["portfolio"])
        try:
            result = import_trades(portfolio=portfolio, data=path.read_bytes(), name=path.name, again=options["again"])
        except ImportRejected as exc:
            lines = "\n".join(f"  {line}" for line in exc.lines)
            raise CommandError(f"{path.name}: rejected, nothing was imported:\n{lines}") from None
        self.stdout.write(
            f"{path.name}: {result.rows} rows into {portfolio.name}: {result.trades} trades opened, "
            f"{result.exits} exits recorded, {result.cash} cash movements; snapshots from {result.first_date} "
            f"are recomputed")


def pick(name):
    if name:
        found = Portfolio.objects.filter(name=name).first()
        if found is None:
            known = ", ".join(Portfolio.objects.order_by("name").values_list("name", flat=True)) or "none yet"
            raise CommandError(f"--portfolio {name!r}: no such portfolio (known: {known})")
        return found
    books = list(Portfolio.objects.order_by("name")[:20])
    if len(books) == 1:
        return books[0]
    if not books:
        raise CommandError("there is no portfolio yet: create one on the site (Portfolios, New) or in the admin")
    raise CommandError(f"there are several portfolios ({', '.join(b.name for b in books)}); pass --portfolio NAME")
