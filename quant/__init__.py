"""Parakeet's computation core: numbers in, numbers out.

Pure functions on pandas/numpy objects. Nothing here imports Django, Celery or an app, reads a clock,
a setting or a file; "as of" is always an argument. A quant can import it in a notebook.
"""
