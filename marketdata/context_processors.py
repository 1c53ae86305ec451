"""Template context for every page: the stale-data banner and the per-exchange freshness (marketdata.freshness)."""
from django.utils.functional import SimpleLazyObject

from . import freshness


def stale_data(request):
    """`stale_data` (None, or which exchanges are how many sessions behind and which daily runs failed)
    and `data_freshness` (the rows of the data page's freshness table).

    Both lazy, so only a template that shows them pays (the admin's pages do not), and only for a
    logged-in user; they share one query cached for a minute, so most pages cost no query at all.
    """
    def signed_in():
        user = getattr(request, "user", None)
        return user is not None and user.is_authenticated

    return {
        "stale_data": SimpleLazyObject(lambda: freshness.banner() if signed_in() else None),
        "data_freshness": SimpleLazyObject(lambda: freshness.by_exchange() if signed_in() else []),
    }
