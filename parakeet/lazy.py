"""Modules imported on first use, so loading the web app does not load pandas, pyarrow or plotly.

A Lambda container imports the WSGI app before its first answer; the dataframe and chart libraries cost
about a second there, and most requests (the journal's JSON, a page of instruments) never touch them.
Views and API modules therefore name their heavy collaborators with `lazy_module("scanner.services")`
instead of importing them at the top; the first attribute read imports the module (importlib's cache
and lock make that cheap and thread-safe), and every later read is a dictionary look-up.
tests/test_coldstart.py walks every URL and the API schema in a fresh process to keep it so.
"""
import importlib


class lazy_module:
    """Stands for module `name`; reading any attribute imports it."""

    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self):
        return f"<lazy module {self._name!r}>"
