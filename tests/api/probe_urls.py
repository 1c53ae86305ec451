"""Test-only URLconf: the real site plus a probe API with write endpoints, to exercise scopes and CSRF.

Issue 2 ships only GET endpoints; these writes (and a handler raising Django's ValidationError) let
the 403 (read-only token), CSRF and 422 paths be tested through the same ParakeetAPI class, auth and
middleware as the real API.
"""
from django.core.exceptions import ValidationError
from django.urls import path
from ninja import Router

from parakeet.api import ParakeetAPI
from parakeet.urls import urlpatterns as site_urlpatterns

router = Router()


@router.get("/echo")
def read_echo(request):
    return {"user": request.auth.username, "via_token": request.api_token is not None}


@router.api_operation(["POST", "PUT", "PATCH", "DELETE"], "/echo")
def write_echo(request):
    return {"user": request.auth.username, "method": request.method}


@router.get("/invalid")
def raise_django_validation(request, kind: str = "field"):
    if kind == "field":
        raise ValidationError({"quantity": ["must be positive"], "entry_date": ["is a weekend"]})
    raise ValidationError("exit before entry")


probe = ParakeetAPI(title="probe", urls_namespace="probe")
probe.add_router("/", router)

urlpatterns = [path("probe/", probe.urls), *site_urlpatterns]
