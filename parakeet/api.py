"""The one NinjaAPI; each app mounts its Router here, and one handler turns domain errors into 4xx JSON."""
from functools import partial

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import MultipleObjectsReturned, ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.utils import DataError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from .auth import api_auth
from .throttle import TokenRateThrottle

DESCRIPTION = """
Parakeet's JSON API for scripts and notebooks.

**Authentication.** Either a logged-in session (browser; POST/PUT/PATCH/DELETE also need the
`X-CSRFToken` header) or `Authorization: Bearer <token>` with a token issued in the admin.
No credentials or a bad token: `401`. A read-only token on a write: `403`.

**Errors.** Every error is JSON with a `detail` key. Unknown symbols and ids: `404`
(`{"detail": "unknown symbol 'XYZ'"}`); a bare symbol listed on several exchanges: `409` naming the
`candidates`. Invalid input: `422` with a list naming each parameter and the problem, e.g.
`{"detail": [{"type": "greater_than_equal", "loc": ["query", "page"],
"msg": "Input should be greater than or equal to 1"}]}`.

**Rate limit.** Each token may make a fixed number of requests a minute (600 unless the desk set
`PARAKEET_API_TOKEN_RATE`); past it, `429` with a `Retry-After` header in seconds.

**Pagination.** Lists take `page` (from 1) and `page_size` (default 50, capped at 500) and answer
`{"items": [...], "count": N}`; a page past the end has an empty `items`.
"""

# The docs and schema are for staff (docs_decorator); API operations answer 401 themselves.
DOCS_URL_NAMES = {"openapi-json", "openapi-view", "api-root"}


BAD_BODY = {
    "description": "The request body is not JSON, or is larger than the server accepts",
    "content": {"application/json": {"schema": {
        "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}},
}


def _nul_at(value, where=()):
    """The location of the first string (or key) holding a NUL character in parsed input, else None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return (*where, key)
            if (found := _nul_at(item, (*where, key))) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _nul_at(item, (*where, index))) is not None:
                return found
    return None


class StrictParser(Parser):
    """ninja's JSON and query parsing, refusing a NUL character (422 naming the field): PostgreSQL cannot
    store one in text, and no symbol, name or note has a reason to hold it."""

    def parse_body(self, request):
        return self._checked(super().parse_body(request), "body")

    def parse_querydict(self, data, list_fields, request):
        return self._checked(super().parse_querydict(data, list_fields, request), "query")

    @staticmethod
    def _checked(values, source):
        where = _nul_at(values)
        if where is not None:
            raise NinjaValidationError([{"type": "string_nul", "loc": [source, *where],
                                         "msg": "must not contain a NUL character"}])
        return values


class ParakeetAPI(NinjaAPI):
    """A NinjaAPI with Parakeet's auth and error handler, exempt from the site's login redirect."""

    def __init__(self, **kwargs):
        kwargs.setdefault("auth", api_auth)
        kwargs.setdefault("throttle", [TokenRateThrottle()])
        kwargs.setdefault("docs_decorator", staff_member_required)
        kwargs.setdefault("parser", StrictParser())
        super().__init__(**kwargs)
        for error in (AuthenticationError, ObjectDoesNotExist, MultipleObjectsReturned, DjangoValidationError):
            self.add_exception_handler(error, partial(domain_error, api=self))
        self.add_exception_handler(Throttled, partial(throttled, api=self))
        self.add_exception_handler(DataError, partial(data_error, api=self))
        self.add_exception_handler(HttpError, partial(http_error, api=self))

    def get_openapi_schema(self, *args, **kwargs):
        # Every operation with a body can answer 400 (ninja: a body that is not JSON, or over
        # DATA_UPLOAD_MAX_MEMORY_SIZE) before its own validation; say so in the published schema.
        schema = super().get_openapi_schema(*args, **kwargs)
        for methods in schema["paths"].values():
            for operation in methods.values():
                if "requestBody" in operation:
                    operation["responses"].setdefault("400", BAD_BODY)
        return schema

    def _get_urls(self):
        # LoginRequiredMiddleware would answer an API client with a 302 to the login page.
        urls = super()._get_urls()
        for pattern in urls:
            if pattern.name not in DOCS_URL_NAMES:
                pattern.callback.login_required = False
        return urls


def throttled(request, exc, *, api):
    """429 naming the limit and the token; ninja adds Retry-After (whole seconds) to this response."""
    limit, window = settings.API_TOKEN_RATE
    token = getattr(request, "api_token", None)
    who = f"token {token.prefix!r}" if token is not None else "this client"
    detail = f"rate limit of {limit} requests per {window} s reached for {who}; retry after {exc.wait} s"
    return api.create_response(request, {"detail": detail}, status=429)


def http_error(request, exc, *, api):
    """ninja's HttpError as ninja answers it, except a body refused by StrictParser: that is a 422 naming the
    field (ninja turns any parser error into "400 Cannot parse request body")."""
    if isinstance(exc.__cause__, NinjaValidationError):
        return api.create_response(request, {"detail": exc.__cause__.errors}, status=422)
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


def data_error(request, exc, *, api):
    """A value the database cannot hold (a NUL in a path, a number out of its range): 422, not a 500."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else "a value the database cannot store"
    return api.create_response(request, {"detail": [{"type": "value_error", "loc": [], "msg": message}]}, status=422)


def domain_error(request, exc, *, api):
    """Map model lookups, ambiguity and Django validation to 404 / 409 / 422 with a JSON `detail`."""
    if isinstance(exc, AuthenticationError):
        detail = str(exc)
        if detail == "Unauthorized":  # ninja's answer when no authenticator matched
            detail = "authentication required: log in, or send 'Authorization: Bearer <token>'"
        response = api.create_response(request, {"detail": detail}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="parakeet"'
        return response
    if isinstance(exc, ObjectDoesNotExist):
        return api.create_response(request, {"detail": str(exc) or "not found"}, status=404)
    if isinstance(exc, MultipleObjectsReturned):
        body = {"detail": str(exc), "candidates": getattr(exc, "candidates", [])}
        return api.create_response(request, body, status=409)
    # Same list-of-{loc, msg} shape as ninja's own 422s, so a client parses one format.
    if hasattr(exc, "error_dict"):
        errors = [
            {"type": "value_error", "loc": [field], "msg": message}
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    else:
        errors = [{"type": "value_error", "loc": [], "msg": message} for message in exc.messages]
    return api.create_response(request, {"detail": errors}, status=422)


api = ParakeetAPI(
    title="Parakeet API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    auth=api_auth,
)
api.add_router("/data/", "marketdata.api.router")
api.add_router("/", "trades.api.router")
api.add_router("/scanner/", "scanner.api.router")
api.add_router("/strategies", "strategies.api.router")
