"""Structured logs: a request id per request, echoed in `X-Request-ID` and carried by every log line of it.

The id is the caller's `X-Request-ID` when it looks like one (a load balancer or a script may set it),
else API Gateway's request id on Lambda, else a fresh one. It lives in a context variable, so a log
line written anywhere while the request runs (a service, the ORM, a provider) carries it; lines outside
a request (a command, a Celery task, a scheduled event) carry "-".
"""
import contextvars
import logging
import re
import uuid

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

HEADER = "X-Request-ID"
NO_REQUEST = "-"
# What we accept from outside: short, printable, no spaces (it ends up in every log line and a header).
VALID = re.compile(r"[A-Za-z0-9._:@/+=-]{8,128}")

request_id = contextvars.ContextVar("request_id", default=NO_REQUEST)


def current_request_id():
    return request_id.get()


def _incoming_id(request):
    given = request.headers.get(HEADER, "")
    if VALID.fullmatch(given):
        return given
    event = request.META.get("lambda.event") or {}
    aws = (event.get("requestContext") or {}).get("requestId", "")
    if VALID.fullmatch(aws):
        return aws
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give every request an id (request.id), put it in the log context and the response's X-Request-ID."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.id = _incoming_id(request)
        token = request_id.set(request.id)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[HEADER] = request.id
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (the handlers' filter, so third-party loggers get it too)."""

    def filter(self, record):
        # Django logs a 4xx/5xx after the middleware has returned: its record carries the request.
        record.request_id = getattr(getattr(record, "request", None), "id", None) or request_id.get()
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time, level, logger, message, request_id, then the record's extras.

    Django's request loggers attach the request object itself; it is replaced by method and path, so
    a query string or a header never reaches the log by that road.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")  # ISO 8601 in UTC
        kwargs.setdefault("json_default", str)
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data, record, message_dict):
        super().add_fields(log_data, record, message_dict)
        log_data.setdefault("request_id", getattr(record, "request_id", request_id.get()))
        request = log_data.pop("request", None)
        if request is not None and hasattr(request, "path"):
            log_data["method"], log_data["path"] = request.method, request.path
        log_data.pop("server_time", None)  # django.server's duplicate of the time
