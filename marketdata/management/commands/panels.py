"""`manage.py panels`: rewrite the Parquet panels whose bars changed (see docs/panels.md)."""
import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError

from marketdata.models import Exchange
from marketdata.panels import PanelError, refresh_panels


class Command(BaseCommand):
    help = "Refresh the Parquet panels in STORAGES['marketdata']: only files whose bars changed are rewritten."

    def add_arguments(self, parser):
        parser.add_argument("--exchange", choices=Exchange.values, help="Only this exchange (default: all)")
        parser.add_argument("--since", help="Only look at files of bars dated from this day's year on, YYYY-MM-DD")
        parser.add_argument("--full", action="store_true", help="Rewrite every file, changed or not")

    def handle(self, *args, **options):
        since = None
        if options["since"]:
            try:
                since = dt.date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError(f"--since {options['since']!r} is not a date (expected YYYY-MM-DD)") from None
        began = time.monotonic()
        try:
            result = refresh_panels(exchange=options["exchange"], since=since, full=options["full"])
        except PanelError as exc:
            raise CommandError(str(exc)) from exc
        for key in result["written"]:
            self.stdout.write(f"wrote {key}")
        for key in result["deleted"]:
            self.stdout.write(f"deleted {key} (no bars left)")
        written = len(result["written"])
        self.stdout.write(
            f"panels: {written} file{'' if written == 1 else 's'} written ({result['rows']:,} rows), "
            f"{len(result['skipped'])} unchanged, {len(result['deleted'])} deleted "
            f"in {time.monotonic() - began:.1f} s"
        )
