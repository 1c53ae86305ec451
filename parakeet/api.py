"""The one NinjaAPI; each app mounts its Router here."""
from ninja import NinjaAPI

api = NinjaAPI(title="Parakeet API", version="1", urls_namespace="api")
api.add_router("/data/", "marketdata.api.router")
