"""The local dev stack: a real Directus (stack/directus) plus the static page server, or a
cluster (PostgreSQL, Redis, two Directus, HAProxy) under a supervisor.

For tests::

    import stack
    info, started_here = stack.ensure_up()   # starts what is down, in the background
    ...
    if started_here:
        stack.down()

``info`` is the content of var/stack.json (stack.core.LocalStack.info). Extra Directus
instances: stack.directus.start_directus / copy_of_main_db / restart / stop.
"""

from .core import down, ensure_up, is_up, read_info, status, up
from .parts import StackError

__all__ = ["StackError", "down", "ensure_up", "is_up", "read_info", "status", "up"]
