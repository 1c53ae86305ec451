"""`manage.py ingest`: load daily bars from a provider into PriceBar rows (see docs/ingest.md)."""
import datetime as dt
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from marketdata.errors import IngestError
from marketdata.models import AssetType, Exchange
from marketdata.panels import refresh_panels_and_say
from marketdata.services import HTTP_PROVIDERS, PROVIDERS, ingest_bars


def _date(text):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = ("Load daily OHLCV bars from the bundled sample, a CSV/Parquet file or an HTTP provider (tiingo, "
            "yahoo, stooq: only the sessions each instrument lacks); re-running changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--provider", required=True, choices=PROVIDERS)
        parser.add_argument("--path", help="CSV (may be gzipped) or Parquet file, for --provider csv|parquet")
        parser.add_argument("--symbols", help="Only these symbols, comma separated, e.g. AAPL,MSFT (BHP.AX or XASX:BHP "
                                              "for the ASX)")
        parser.add_argument("--universe", help="HTTP providers: the members of this universe (e.g. SP500) as of --end")
        parser.add_argument("--full", action="store_true",
                            help="HTTP providers: fetch everything from --start, not only the sessions after the last "
                                 "stored bar")
        parser.add_argument("--start", help="First date to load, YYYY-MM-DD")
        parser.add_argument("--end", help="Last date to load, YYYY-MM-DD")
        parser.add_argument("--exchange", choices=Exchange.values,
                            help="Exchange of rows that name none (default XNYS; XASX implies AUD)")
        parser.add_argument("--asset-type", choices=AssetType.values,
                            help="Asset type of instruments created by this run (default equity)")
        parser.add_argument("--no-panels", action="store_true",
                            help="Leave the Parquet panels as they are (by default the files whose bars changed are "
                                 "rewritten, so scans and backtests see the new bars)")

    def handle(self, *args, **options):
        start, end = (_date(options[k]) if options[k] else None for k in ("start", "end"))
        if start and end and start > end:
            raise CommandError(f"--start {start} is after --end {end}")
        symbols = [s for s in (options["symbols"] or "").split(",") if s.strip()] or None
        http = options["provider"] in HTTP_PROVIDERS
        if not http and (options["universe"] or options["full"]):
            raise CommandError("--universe and --full are for the HTTP providers (tiingo, yahoo, stooq)")
        if http and options["path"]:
            raise CommandError(f"--provider {options['provider']} fetches over HTTP and takes no --path")
        extra = {"universe": options["universe"], "full": options["full"]} if http else {}
        began = time.monotonic()
        try:
            run = ingest_bars(
                provider=options["provider"], path=options["path"], symbols=symbols, start=start, end=end,
                exchange=options["exchange"], asset_type=options["asset_type"],
                progress=sys.stderr.isatty(), **extra,
            )
        except IngestError as exc:
            raise CommandError(str(exc)) from exc
        result = run.result
        seconds = time.monotonic() - began
        self.stdout.write(
            f"{run.provider}: {result.symbols} symbol{'' if result.symbols == 1 else 's'}, {run.rows_read:,} rows read"
            f"{f' ({result.duplicates:,} duplicates, last kept)' if result.duplicates else ''}: "
            f"{run.rows_inserted:,} inserted, {run.rows_updated:,} updated, {run.rows_unchanged:,} unchanged, "
            f"{run.rows_flagged:,} flagged ({result.quarantined:,} quarantined) "
            f"in {seconds:.1f} s, run #{run.pk} {run.status}"
        )
        for message in run.errors:
            self.stderr.write(message)
        if not options["no_panels"] and (run.rows_inserted or run.rows_updated):
            refresh_panels_and_say(self.stdout)
        if run.status == run.Status.RATE_LIMITED:
            raise CommandError(f"run #{run.pk} was rate limited; retry after {run.retry_at:%Y-%m-%d %H:%M %Z}")
        if run.status == run.Status.PROVIDER_ERROR:
            raise CommandError(f"run #{run.pk}: provider error, nothing written")
