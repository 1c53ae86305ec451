"""`manage.py daily`: the daily chain (ingest, quality checks, Parquet refresh, hooks) per exchange."""
import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from marketdata import daily


def _date(text):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--date {text!r} is not a date (expected YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = ("Run the daily chain for an exchange's session (default: both exchanges, each its latest closed "
            "session): incremental ingest from the exchange's provider (PARAKEET_DAILY_PROVIDERS) with the quality "
            "checks, the Parquet panel refresh, then the hooks in PARAKEET_DAILY_HOOKS (by default the portfolio "
            "snapshots and the daily saved scans). Running it again for the same session changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("--exchange", choices=daily.EXCHANGES, help="Only this exchange (default: both)")
        parser.add_argument("--date", help="The session, YYYY-MM-DD (default: the latest closed one)")

    def handle(self, *args, **options):
        session = _date(options["date"]) if options["date"] else None
        exchanges = [options["exchange"]] if options["exchange"] else list(daily.EXCHANGES)
        try:
            # Check every exchange's session before running any, so a bad --date runs nothing.
            sessions = {exchange: daily.resolve_session(exchange, session) for exchange in exchanges}
        except daily.DailyError as exc:
            raise CommandError(str(exc)) from exc
        failed = []
        for exchange in exchanges:
            run = daily.run_daily(exchange=exchange, session=sessions[exchange], trigger="command")
            self.stdout.write(self._summary(run))
            if run.status in (run.Status.FAILED, run.Status.PROVIDER_ERROR):
                failed.append(f"{exchange} {run.session}: {run.errors[-1] if run.errors else run.status}")
        if failed:
            raise CommandError("daily run failed: " + "; ".join(failed))

    @staticmethod
    def _summary(run):
        steps = ", ".join(f"{step['step']} {step['status']} {step['seconds']:.1f} s" for step in run.steps)
        return (f"{run.exchange} {run.session}: {run.get_status_display().lower()} (run #{run.pk}) - "
                f"{run.rows_inserted:,} inserted, {run.rows_updated:,} updated, {run.rows_unchanged:,} unchanged, "
                f"{run.rows_flagged:,} flagged; {steps}")
