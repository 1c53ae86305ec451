"""`manage.py import_universe`: load a universe's point-in-time membership intervals (see docs/ingest.md)."""
from django.core.management.base import BaseCommand, CommandError

from marketdata.errors import IngestError
from marketdata.universes import READERS, import_memberships


class Command(BaseCommand):
    help = ("Replace a universe's membership intervals with a file's (SP500: sp500_membership_intervals.csv, "
            "ASX300: asx_top300_universe.csv); re-running changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--code", required=True, type=str.upper, choices=list(READERS))
        parser.add_argument("--path", required=True, help="The membership file")
        parser.add_argument("--changes", help="SP500 only: sp500_changes_since_2019.csv, applied after the "
                                              "intervals file's last change")
        parser.add_argument("--details", help="A constituents list (Symbol, Security, GICS Sector), e.g. "
                                              "sp500_constituents_current.csv: names and sectors of the instruments")

    def handle(self, *args, **options):
        try:
            run = import_memberships(code=options["code"], path=options["path"], changes=options["changes"],
                                     details=options["details"])
        except IngestError as exc:
            raise CommandError(str(exc)) from exc
        seconds = run.duration.total_seconds()
        self.stdout.write(f"{options['code']}: {run.result.summary()} in {seconds:.1f} s, run #{run.pk} {run.status}")
