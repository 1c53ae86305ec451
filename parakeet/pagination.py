"""The API's page-number pagination: ninja's, with a highest page number a database OFFSET can hold.

ninja's own accepts any page number, and page 200909350154568120106478863384576 (schemathesis found it)
overflows SQLite's 64-bit OFFSET: a 500. Past MAX_PAGE the answer is a 422 naming `page`, like page 0.
It is the default pagination (settings.NINJA_PAGINATION_CLASS), so `@paginate` alone uses it.
"""
from typing import Optional

from ninja import Field, Schema
from ninja.pagination import PageNumberPagination as NinjaPageNumberPagination

MAX_PAGE = 1_000_000


class PageNumberPagination(NinjaPageNumberPagination):
    class Input(Schema):
        page: int = Field(1, ge=1, le=MAX_PAGE)
        page_size: Optional[int] = Field(None, ge=1)
