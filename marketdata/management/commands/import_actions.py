"""`manage.py import_actions FILE`: load splits and dividends and recompute the adjusted series (docs/ingest.md)."""
import time

from django.core.management.base import BaseCommand, CommandError

from marketdata.adjustments import import_actions
from marketdata.errors import IngestError
from marketdata.models import Exchange
from marketdata.panels import refresh_panels_and_say


class Command(BaseCommand):
    help = ("Load corporate actions (ticker, date, dividend_amount, split_coefficient CSV, may be gzipped) for "
            "existing instruments and recompute their adjustment factors; re-running changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV with ticker, date, dividend_amount, split_coefficient")
        parser.add_argument("--exchange", choices=Exchange.values, default="XNYS",
                            help="Exchange of the tickers' instruments where the file names none (default XNYS)")
        parser.add_argument("--source", default="alphavantage",
                            help="Source recorded on the actions and the run (default alphavantage)")
        parser.add_argument("--no-panels", action="store_true",
                            help="Leave the Parquet panels as they are (by default the files whose factors moved are "
                                 "rewritten)")

    def handle(self, *args, **options):
        source = options["source"].strip()
        if not source or len(source) > 16:
            raise CommandError(f"--source {source!r}: give a name of 1 to 16 characters")
        began = time.monotonic()
        try:
            run = import_actions(path=options["file"], exchange=options["exchange"], source=source)
        except IngestError as exc:
            raise CommandError(str(exc)) from exc
        saved = run.result
        known = saved.inserted + saved.updated + saved.unchanged
        self.stdout.write(
            f"{run.provider}: {run.rows_read:,} rows read, {known:,} actions for {saved.instruments:,} "
            f"instrument{'' if saved.instruments == 1 else 's'}: {run.rows_inserted:,} inserted, "
            f"{run.rows_updated:,} updated, {run.rows_unchanged:,} unchanged; {run.factors_recomputed:,} bar factors "
            f"recomputed in {time.monotonic() - began:.1f} s, run #{run.pk} {run.status}"
        )
        if saved.unknown:
            self.stderr.write(f"{len(saved.unknown)} symbols without an instrument on {options['exchange']}, "
                              f"not stored: {', '.join(saved.unknown)}")
        if not options["no_panels"] and run.factors_recomputed:
            refresh_panels_and_say(self.stdout)
