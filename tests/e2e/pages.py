"""Opening the page in the e2e tests (open_page and stack are conftest.py's fixtures)."""

from __future__ import annotations

PYODIDE = "pyodide.html"  # the page's Pyodide build; "" is the page (MicroPython)


def ready_page(open_page, stack: dict, name: str = "page", path: str = "", **kwargs):
    """The page (or, with ``path=PYODIDE``, its Pyodide build), connected and subscribed."""
    probe = open_page(name, **kwargs)
    probe.goto(stack["app_url"] + path)
    probe.wait_ready()
    return probe
