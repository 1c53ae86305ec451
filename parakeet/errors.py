"""Error pages that answer in the caller's language: JSON under /api/, the site's HTML page elsewhere.

A path under /api/v1/ that no route matches (`/api/v1/trades/abc`: the id converter refuses it before
django-ninja sees the request) would otherwise get the HTML "Page not found", which a script parsing
JSON cannot read and which the published schema does not promise.
"""
from django.http import JsonResponse
from django.views import defaults


def not_found(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not Found"}, status=404)
    return defaults.page_not_found(request, exception)
