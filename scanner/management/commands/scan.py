"""`manage.py scan`: run screens over a universe as of a date, or replay one over a date range."""
import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError

from parakeet.jobs import JobStatus
from scanner import services
from scanner.formats import metric
from scanner.models import SavedScreen

SHOWN_HITS = 20


def _date(option, text):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} is not a date (expected YYYY-MM-DD)") from None


def parse_params(pairs):
    """['top_percent=2', 'filters.min_price.USD=10', 'require=all'] -> nested dict; values read as JSON
    when they are JSON (numbers, true/false, lists), else as text."""
    params = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param {pair!r}: expected name=value, e.g. top_percent=2")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        target, parts = params, key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise CommandError(f"--param {pair!r}: {part} is not a group of parameters")
        target[parts[-1]] = value
    return params


class Command(BaseCommand):
    help = ("Run a screen over a universe as of a date (default: every daily saved screen, today), or with "
            "--from/--to replay it day by day and report its hits' forward returns against the universe.")

    def add_arguments(self, parser):
        parser.add_argument("--screen", help="A saved screen's name or a built-in screen "
                                             "(momentum_breakout, high_52w, relative_strength)")
        parser.add_argument("--universe", help="Universe code(s): SP500, ASX300 or SP500+ASX300 "
                                               "(default: the saved screen's)")
        parser.add_argument("--as-of", help="YYYY-MM-DD (default today: the latest session with data)")
        parser.add_argument("--param", action="append", metavar="NAME=VALUE",
                            help="Override a parameter, e.g. --param top_percent=2 --param filters.min_price.USD=10")
        parser.add_argument("--from", dest="replay_from", help="Replay from this date (YYYY-MM-DD)")
        parser.add_argument("--to", dest="replay_to", help="Replay up to this date (default today)")
        parser.add_argument("--horizons", default="5,20,60", help="Replay: sessions after each hit (default 5,20,60)")

    def handle(self, *args, **options):
        params = parse_params(options["param"])
        if options["replay_from"] or options["replay_to"]:
            return self._replay(options, params)
        as_of = _date("--as-of", options["as_of"]) if options["as_of"] else None
        if options["screen"]:
            names = [options["screen"]]
        else:
            names = list(SavedScreen.objects.filter(daily=True).order_by("name").values_list("name", flat=True))
            if not names:
                raise CommandError("no daily saved screen; give --screen (e.g. --screen momentum_breakout "
                                   "--universe SP500)")
        failed = []
        for name in names:
            try:
                run = services.scan(screen=name, universe=options["universe"], as_of=as_of, params=params)
            except services.ScanError as exc:
                problem = exc.detail
                if options["screen"]:
                    raise CommandError(problem) from exc
                # Every daily screen gets its turn; the ones that cannot run are named at the end.
                self.stdout.write(f"{name}: not run: {problem}")
                failed.append(f"{name}: {problem}")
                continue
            self._report(run)
            if run.status != JobStatus.SUCCESS:
                failed.append(f"{run.name} (run #{run.pk}): {run.error}")
        if failed:
            raise CommandError("scan failed: " + "; ".join(failed))

    def _report(self, run):
        if run.status != JobStatus.SUCCESS:
            self.stdout.write(f"{run.name} {run.universe}: failed (run #{run.pk}): {run.error}")
            return
        sessions = ", ".join(f"{cal} {day}" for cal, day in sorted(run.context["sessions"].items()))
        self.stdout.write(f"{run.name} ({run.screen_label}) {run.universe} as of {run.as_of} (data: {sessions}): "
                          f"{run.hit_count} hits; run #{run.pk} in {run.context['seconds']:.2f} s")
        for entry in run.funnel:
            self.stdout.write(f"  {entry['passed']:>6,}  {entry['label']}")
            if entry.get("note"):
                self.stdout.write(f"          {entry['note']}")
        shown = [m for m in run.context["metrics"] if m["key"] not in ("close", "history")][:5]
        for hit in run.hits.select_related("instrument")[:SHOWN_HITS]:
            values = "  ".join(f"{m['key']} {metric(hit.metrics.get(m['key']), m['kind'])}" for m in shown)
            self.stdout.write(f"  #{hit.rank:<3} {hit.instrument.key:<12} score {hit.score:8.3f}  {values}")
        if run.hit_count > SHOWN_HITS:
            self.stdout.write(f"  ... and {run.hit_count - SHOWN_HITS} more (GET /api/v1/scanner/results?run={run.pk})")

    def _replay(self, options, params):
        if not options["screen"]:
            raise CommandError("a replay needs --screen")
        if not options["replay_from"]:
            raise CommandError("a replay needs --from YYYY-MM-DD")
        start = _date("--from", options["replay_from"])
        end = _date("--to", options["replay_to"]) if options["replay_to"] else dt.date.today()
        try:
            horizons = [int(h) for h in options["horizons"].split(",") if h.strip()]
        except ValueError:
            raise CommandError(f"--horizons {options['horizons']!r}: whole numbers separated by commas") from None
        try:
            replay = services.start_replay(screen=options["screen"], universe=options["universe"], start=start,
                                           end=end, params=params, horizons=horizons)
        except services.ScanError as exc:
            raise CommandError(exc.detail) from exc
        replay = services.run_replay(replay)
        if replay.status != JobStatus.SUCCESS:
            raise CommandError(f"replay #{replay.pk} failed: {replay.error}")
        s = replay.summary
        self.stdout.write(f"replay #{replay.pk} {replay.name} {replay.universe} {s['first']}..{s['last']}: "
                          f"{s['sessions']:,} sessions, {s['hits']:,} {'new ' if s['only_new'] else ''}hits of "
                          f"{s['names']:,} names on {s['days_with_hits']:,} days, {s['seconds']:.1f} s")
        self.stdout.write(f"  {'after':>8} {'hits':>7} {'mean':>8} {'median':>8} {'up':>6} | {'universe':>9} "
                          f"{'mean':>8} {'up':>6} | {'excess':>8} {'pending':>7}")
        for h in s["horizons"]:
            hits, uni = h["hits"], h["universe"]
            self.stdout.write(
                f"  {h['sessions']:>5} d {hits['n']:>7,} {metric(hits['mean'], 'pct'):>8} {metric(hits['median'], 'pct'):>8} "
                f"{metric(hits['hit_rate'], 'share'):>6} | {uni['n']:>9,} {metric(uni['mean'], 'pct'):>8} "
                f"{metric(uni['hit_rate'], 'share'):>6} | {metric(h['excess'], 'pct'):>8} {h['pending']:>7,}")
