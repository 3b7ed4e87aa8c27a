"""The page around the guide's script (``main.py``): one ``Page`` (``page.app``) owns the state.

The rules live in modules that take their inputs as values and import no ``pyscript``, each
tested in CPython under tests/unit: ``settings`` (where to connect, checked), ``outbox``
(writes kept across a reload, per tab), ``writes`` (what ``create_item`` accepts, what an
answer means for a write), ``history`` (the reads and their order), ``logs`` (the console-line
queue). The DOM edge is thin: ``rows`` (the list), ``screen`` (status, problems, forms),
``browser`` (the only module touching PyScript's FFI) and ``app``, which connects them.
"""
