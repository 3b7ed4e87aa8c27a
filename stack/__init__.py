"""The local dev stack: a real Directus (stack/directus) plus the static page server.

For tests::

    import stack
    info, started_here = stack.ensure_up()   # starts it in the background when not running
    ...
    if started_here:
        stack.down()

``info`` is the content of var/stack.json (see stack.core._make_info). Extra Directus
instances: stack.directus.start_directus / copy_of_main_db / restart / stop.
"""

from .core import StackError, down, ensure_up, is_up, read_info, status, up

__all__ = ["StackError", "down", "ensure_up", "is_up", "read_info", "status", "up"]
