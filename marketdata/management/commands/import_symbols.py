"""`manage.py import_symbols`: ASX code changes into the symbol master, delistings as evidence (docs/ingest.md)."""
from django.core.management.base import BaseCommand, CommandError

from marketdata.errors import IngestError
from marketdata.symbols import import_symbols


class Command(BaseCommand):
    help = ("Load ASX code changes (asx_name_changes_*.csv.gz) into the symbol master and mark stored "
            "instruments delisted where asx_delisted_*.csv.gz is evidence; re-running changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--changes", help="ASX name-change file (effective_date, old_code, new_code, ...)")
        parser.add_argument("--delisted", help="ASX delisted file (code, date_delisted, ...)")

    def handle(self, *args, **options):
        if not options["changes"] and not options["delisted"]:
            raise CommandError("give --changes FILE, --delisted FILE or both")
        try:
            run = import_symbols(changes=options["changes"], delisted=options["delisted"])
        except IngestError as exc:
            raise CommandError(str(exc)) from exc
        seconds = run.duration.total_seconds()
        self.stdout.write(f"symbols: {run.result.summary()} in {seconds:.1f} s, run #{run.pk} {run.status}")
