"""`manage.py snapshot [--portfolio NAME] [--since D]`: mark portfolios to market, only the days needed."""
import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError

from trades.models import Portfolio
from trades.services import snapshot_portfolio

SHOWN_UNVALUED = 5


class Command(BaseCommand):
    help = ("Compute the daily snapshots each portfolio lacks: from its stale mark (a back-dated change) or its "
            "last snapshot, or from --since, to the last day with market data.")

    def add_arguments(self, parser):
        parser.add_argument("--portfolio", action="append", help="Only this portfolio (repeatable; default all)")
        parser.add_argument("--since", help="Recompute from this day at the latest, YYYY-MM-DD (e.g. after a "
                                            "price correction)")

    def handle(self, *args, **options):
        since = None
        if options["since"]:
            try:
                since = dt.date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError(f"--since {options['since']!r} is not a date (expected YYYY-MM-DD)") from None
        books = Portfolio.objects.order_by("name")
        if options["portfolio"]:
            books = books.filter(name__in=options["portfolio"])
            missing = set(options["portfolio"]) - set(books.values_list("name", flat=True))
            if missing:
                raise CommandError(f"--portfolio {', '.join(sorted(missing))}: no such portfolio")
        if not books.exists():
            self.stdout.write("no portfolios")
            return
        failed = []
        for book in books:
            began = time.monotonic()
            try:
                result = snapshot_portfolio(portfolio=book, since=since)
            except Exception as exc:  # report and go on with the other books
                failed.append(book.name)
                self.stderr.write(f"{book.name}: failed: {exc}")
                continue
            span = f"{result.start}..{result.end}" if result.written else "nothing to do"
            self.stdout.write(f"{book.name}: {span}, {result.written} days written in "
                              f"{time.monotonic() - began:.2f} s, {len(result.unvalued)} unvalued")
            for day, reason in result.unvalued[:SHOWN_UNVALUED]:
                self.stdout.write(f"  {day}: {reason}")
            if len(result.unvalued) > SHOWN_UNVALUED:
                self.stdout.write(f"  ... and {len(result.unvalued) - SHOWN_UNVALUED} more")
        if failed:
            raise CommandError(f"snapshots failed for {', '.join(failed)}")
