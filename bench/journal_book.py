"""The book bench/snapshots and bench/overview measure: 2,000 trades over 200 S&P 500 names, 10 years.

Built in a throwaway database from the real AlphaVantage file (../shared/marketdata/us/
sp500_daily_av_2007_2021.parquet): the first 200 tickers with a bar on every session of 2011-04-21 ..
2021-04-21 are ingested (with their splits and dividends) from 2011-03-01, and their Parquet panels written.
The trades are generated with a fixed seed (a benchmark's load, not anyone's trades): each buys (80%) or
shorts (20%) about 20,000 USD of a random name at a real close, holds it 5 to 250 sessions and exits at the
real close then (a third exit in two halves; a tenth are still open at the end); a trade spanning a split
exits the post-split quantity, as a broker reports it. Ten deposits of 100,000 and twenty fees come with
them. Everything goes through trades.services, as a trader's entries would.

The database and its panels are kept between runs (bench/snapshots then bench/overview reuse them);
`--fresh` rebuilds, `--drop` removes them.
"""
import datetime as dt
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SP500 = ROOT.parent / "shared" / "marketdata" / "us" / "sp500_daily_av_2007_2021.parquet"
WORKDIR = Path("/tmp/parakeet-bench-journal")
START, END = dt.date(2011, 4, 21), dt.date(2021, 4, 21)
LOAD_FROM = dt.date(2011, 3, 1)
TICKERS, TRADES = 200, 2000
BOOK = "Bench 10y"
SEED = 20240308


def database_url(kind, server, name):
    if kind == "sqlite":
        return f"sqlite:///{WORKDIR / (name + '.sqlite3')}"
    return f"{server.rstrip('/')}/{name}"


def data_dir(kind, name):
    return WORKDIR / f"panels-{kind}-{name}"


def prepare(kind, server, name, *, fresh=False):
    """Create and migrate the database if it is missing (or `fresh`); returns its URL."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    url = database_url(kind, server, name)
    if kind == "sqlite":
        path = WORKDIR / f"{name}.sqlite3"
        if fresh and path.exists():
            path.unlink()
        exists = path.exists()
    else:
        import psycopg

        with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
            if fresh and exists:
                admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
                exists = False
            if not exists:
                admin.execute(f"CREATE DATABASE {name}")
    if fresh:
        import shutil

        shutil.rmtree(data_dir(kind, name), ignore_errors=True)
    if not exists:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "parakeet.settings.base"}
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    return url


def drop(kind, server, name):
    import shutil

    shutil.rmtree(data_dir(kind, name), ignore_errors=True)
    if kind == "sqlite":
        (WORKDIR / f"{name}.sqlite3").unlink(missing_ok=True)
        return
    import psycopg

    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def child_env(kind, server, name):
    return {**os.environ, "DATABASE_URL": database_url(kind, server, name),
            "PARAKEET_DATA_DIR": str(data_dir(kind, name)), "DJANGO_SETTINGS_MODULE": "parakeet.settings.base",
            "LOG_LEVEL": "WARNING"}


# --- inside the configured child process ----------------------------------------------------------

def setup_django():
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()


def book():
    """The bench portfolio, built on first use. Returns (portfolio, seconds spent building or 0)."""
    from trades.models import Portfolio

    found = Portfolio.objects.filter(name=BOOK).first()
    if found is not None and found.trades.count() >= TRADES:
        return found, 0.0
    began = time.perf_counter()
    portfolio = _build()
    return portfolio, time.perf_counter() - began


def _build():
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from marketdata import calendars
    from marketdata.models import Instrument
    from marketdata.panels import refresh_panels
    from marketdata.services import ingest_bars
    from trades import services, tasks
    from trades.models import Portfolio

    sessions = calendars.sessions_between("XNYS", START, END)
    table = pq.read_table(SP500, filters=[("date", ">=", LOAD_FROM), ("date", "<=", END)])
    frame = table.select(["ticker", "date", "close"]).to_pandas()
    frame["date"] = frame["date"].astype("datetime64[s]").dt.date
    covered = frame[frame["date"] >= START].groupby("ticker", observed=True)["date"].nunique()
    tickers = sorted(t for t, n in covered.items() if n == len(sessions))[:TICKERS]
    subset = table.filter(pc.is_in(table["ticker"].cast(pa.string()), value_set=pa.array(tickers)))
    path = WORKDIR / "bench-book.parquet"
    pq.write_table(subset, path)
    ingest_bars(provider="parquet", path=path)
    refresh_panels(exchange="XNYS")

    closes = frame[frame["ticker"].isin(tickers)].pivot(index="date", columns="ticker", values="close")
    closes = closes.loc[[d for d in sessions]]
    instruments = {i.symbol: i for i in Instrument.objects.filter(symbol__in=tickers, exchange="XNYS")}
    from quant import portfolio as qp
    from trades.valuation import splits_of

    splits = splits_of([i.pk for i in instruments.values()])
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": False})
    Portfolio.objects.filter(name=BOOK).delete()
    portfolio = services.create_portfolio(owner=user, name=BOOK, base_currency="USD", starting_cash=Decimal(2_000_000),
                                          inception_date=sessions[0], benchmark=instruments[tickers[0]])
    rng = np.random.default_rng(SEED)
    enqueue = tasks.update_snapshots.delay
    tasks.update_snapshots.delay = lambda *args, **kwargs: None  # the bench times the recomputation itself
    try:
        with transaction.atomic():
            for _ in range(TRADES):
                symbol = tickers[rng.integers(len(tickers))]
                key = f"XNYS:{symbol}"
                entry = int(rng.integers(0, len(sessions) - 6))
                hold = int(rng.integers(5, 251))
                leave_open = rng.random() < 0.10 or entry + hold >= len(sessions)
                exit_at = min(entry + hold, len(sessions) - 1)
                # A window over a fractional "split" (a spin-off adjustment) ends before it: a broker reports
                # whole or half shares there, not 1.487 of each.
                for ex_date, ratio in splits.get(key, []):
                    if sessions[entry] < ex_date <= sessions[exit_at] and not float(ratio * 2).is_integer():
                        exit_at = max(entry + 1, sessions.index(ex_date) - 1) if ex_date in sessions else entry + 1
                price = Decimal(repr(round(float(closes.at[sessions[entry], symbol]), 4)))
                quantity = max(1, int(20_000 / float(price)))
                direction = "short" if rng.random() < 0.2 else "long"
                exits = []
                if not leave_open:
                    ratio = Decimal(repr(qp.split_ratio(splits.get(key, []), sessions[entry], sessions[exit_at])))
                    shares = Decimal(quantity) * ratio
                    out = Decimal(repr(round(float(closes.at[sessions[exit_at], symbol]), 4)))
                    if rng.random() < 1 / 3 and exit_at - entry > 2:
                        middle = entry + (exit_at - entry) // 2
                        mid_ratio = Decimal(repr(qp.split_ratio(splits.get(key, []), sessions[entry], sessions[middle])))
                        half = Decimal(quantity // 2)
                        mid_price = Decimal(repr(round(float(closes.at[sessions[middle], symbol]), 4)))
                        exits.append({"date": sessions[middle], "quantity": half * mid_ratio, "price": mid_price,
                                      "commission": Decimal("4.95")})
                        shares = (Decimal(quantity) - half) * ratio
                    exits.append({"date": sessions[exit_at], "quantity": shares, "price": out,
                                  "commission": Decimal("4.95")})
                services.record_trade(portfolio=portfolio, user=user, symbol=instruments[symbol], direction=direction,
                                      quantity=quantity, entry_price=price, entry_date=sessions[entry],
                                      entry_commission=Decimal("4.95"), exits=exits, strategy_name="bench")
            for n in range(10):
                services.add_cash(portfolio=portfolio, user=user, date=sessions[int(rng.integers(len(sessions)))],
                                  kind="deposit", amount=Decimal(100_000))
            for n in range(20):
                services.add_cash(portfolio=portfolio, user=user, date=sessions[int(rng.integers(len(sessions)))],
                                  kind="fee", amount=Decimal("25.00"))
    finally:
        tasks.update_snapshots.delay = enqueue
    return portfolio
