"""The page around the guide's script (``main.py``): one ``Page`` (``page.app``) owns the state.

The list of messages is a view (``view``) of one live query of the client library, which owns
the truth: catch-up, checks, pending writes, one outbox. The rules the page keeps live in
modules that take their inputs as values and import no ``pyscript``, each tested in CPython
under tests/unit: ``settings`` (where to connect, checked), ``outbox`` (the store of the
library's outbox in localStorage, per tab), ``snapshot`` (the live query's last rows, for a
reload offline), ``view`` (the query's changes applied to the rows), ``writes`` (what
``create_item`` accepts), ``history`` (the query), ``logs`` (the console-line queue). The DOM
edge is thin: ``rows`` (the list), ``screen`` (status, problems, forms), ``browser`` (the only
module touching PyScript's FFI) and ``app``, which connects them.
"""
