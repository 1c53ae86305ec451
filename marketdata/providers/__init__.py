"""HTTP market-data providers behind one interface: get_provider(name).fetch(requests, start=, end=).

See base.py for the interface (SymbolRequest, FetchResult, Outcome), symbols.py for the symbol mapping
and docs/ingest.md for what each provider serves.
"""
from .base import FetchResult, Outcome, Provider, ProviderError, SymbolRequest
from .stooq import StooqProvider
from .tiingo import TiingoProvider
from .yahoo import YahooProvider

REGISTRY = {"tiingo": TiingoProvider, "yahoo": YahooProvider, "stooq": StooqProvider}
NAMES = tuple(REGISTRY)

__all__ = ["FetchResult", "NAMES", "Outcome", "Provider", "ProviderError", "SymbolRequest", "get_provider"]


def get_provider(name, **options) -> Provider:
    """The adapter for `name`, configured from settings (base URL, rate, retries, timeout, token).

    Keyword `options` override the settings (tests pass `sleep_with` to record waits). Raises
    ProviderError for an unknown name, or a Tiingo provider without TIINGO_API_KEY.
    """
    from django.conf import settings

    if name not in REGISTRY:
        raise ProviderError(f"unknown provider {name!r} (available: {', '.join(NAMES)})")
    config = {"base_url": settings.PROVIDER_URLS[name], "rate": settings.PROVIDER_RATE,
              "retries": settings.PROVIDER_RETRIES, "timeout": settings.PROVIDER_TIMEOUT}
    if name == "tiingo":
        config["token"] = settings.TIINGO_API_KEY
        if not (options.get("token") or config["token"]):
            raise ProviderError("the Tiingo provider needs an API token: set TIINGO_API_KEY")
    return REGISTRY[name](**{**config, **options})
