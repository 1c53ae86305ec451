"""Parakeet: the desk's dashboard project package (settings, urls, the API, Celery, Lambda entry points)."""
