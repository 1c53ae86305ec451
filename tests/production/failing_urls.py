"""A URLconf with a view that fails after touching the secrets, for the leak test."""
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.urls import path


@login_not_required
def boom(request):
    token = settings.TIINGO_API_KEY  # noqa: F841 - a local holding a secret when the error happens
    raise RuntimeError("the provider failed")


urlpatterns = [path("boom", boom)]
