"""`manage.py backtest`: run one strategy over a universe and dates, in this process, and print its metrics."""
import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from quant import strategies
from strategies import services
from strategies.views import METRICS


def _date(text, option):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} is not a date (expected YYYY-MM-DD)") from None


def _pairs(items):
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return params


class Command(BaseCommand):
    help = ("Backtest a strategy (costs always on, next-bar fills, point-in-time universe) and print its metrics. "
            f"Strategies: {', '.join(strategies.CATALOG)}.")

    def add_arguments(self, parser):
        parser.add_argument("--strategy", required=True, help=f"One of {', '.join(strategies.CATALOG)}")
        parser.add_argument("--universe", default="SP500",
                            help="SP500 (point-in-time members, default), SP500:current (today's members: "
                                 "survivorship-biased) or symbols, e.g. AAPL,MSFT")
        parser.add_argument("--start", help="First date, YYYY-MM-DD (default: the first stored bar)")
        parser.add_argument("--end", help="Last date, YYYY-MM-DD (default: the last stored bar)")
        parser.add_argument("--param", action="append", metavar="KEY=VALUE",
                            help="A strategy parameter, repeatable, e.g. --param top_n=20")
        parser.add_argument("--fill", choices=["open", "close"], help="Fill at the next bar's open or close (close)")
        parser.add_argument("--commission-bps", type=float, help="Commission in bps of notional (5)")
        parser.add_argument("--commission-min", type=float, help="Minimum commission per order (1)")
        parser.add_argument("--slippage-bps", type=float, help="Slippage in bps of notional (5)")
        parser.add_argument("--capital", type=float, help="Starting capital (100000)")
        parser.add_argument("--whole-shares", action="store_true", help="Round orders to whole shares")

    def handle(self, *args, **options):
        start = _date(options["start"], "--start") if options["start"] else None
        end = _date(options["end"], "--end") if options["end"] else None
        engine = {"fill": options["fill"], "commission_bps": options["commission_bps"],
                  "commission_min": options["commission_min"], "slippage_bps": options["slippage_bps"],
                  "capital": options["capital"], "fractional": False if options["whole_shares"] else None}
        try:
            request = services.validate_request(strategy=options["strategy"], params=_pairs(options["param"]),
                                                universe=options["universe"], start=start, end=end, engine=engine)
        except services.BacktestRequestError as exc:
            where = exc.loc[-1] if exc.loc[0] == "params" and len(exc.loc) > 1 else exc.loc[0]
            option = f"--param {where}" if exc.loc[0] == "params" else f"--{where.replace('_', '-')}"
            raise CommandError(f"{option}: {exc.message}") from None
        run = services.create_backtest(request)
        run = services.execute_backtest(run)
        if run.status != "success":
            raise CommandError(f"backtest #{run.pk} failed: {run.error}")
        values = run.metrics["strategy"]["values"]
        self.stdout.write(f"backtest #{run.pk}: {run.strategy} on {run.universe}, {run.first_bar} .. {run.last_bar}, "
                          f"{run.instruments} instruments")
        if run.survivorship_biased:
            self.stdout.write(self.style.WARNING(f"survivorship-biased universe: {run.universe_note}"))
        for key, label, _, kind in METRICS:
            value = values.get(key)
            if value is None:
                shown = f"n/a ({run.metrics['strategy']['undefined'].get(key, 'undefined')})"
            elif kind == "pct":
                shown = f"{value:.2%}"
            elif kind in ("money", "count"):
                shown = f"{value:,.2f}" if kind == "money" else f"{value:,.0f}"
            else:
                shown = f"{value:.3f}"
            self.stdout.write(f"  {label:<28} {shown}")
        bias = run.metrics["bias_check"]
        survival = "n/a" if bias["survival"] is None else f"{bias['survival']:.0%}"
        self.stdout.write(f"  {'Bias check (1 bar later)':<28} {survival} of the Sharpe survives")
        self.stdout.write(f"  took {run.duration.total_seconds():.2f} s; artifacts {run.equity_path}, {run.trades_path}")
