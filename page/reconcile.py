"""Reconciliation: finding the messages the subscription never delivered.

Directus carries realtime events between its instances on a bus (Redis pub/sub). When the bus
blinks, the events published meanwhile are lost and every socket stays open: nothing tells the
page. So the page checks now and then that it shows every message since a point up to which it
knows it had them all, and shows what it finds through the same keyed rows as live events (a
row already shown is never shown twice):

- ``GRACE`` seconds after one of its own writes was answered, if that write's own event has not
  arrived: the cheapest witness that the bus lost something, at once;
- every ``EVERY`` seconds while subscribed, for what others wrote (a page that only reads has
  no other witness).

Where a check starts: at the newest ``date_created`` the page showed when the check before the
previous one started. A message escapes check k only if it was committed after check k-1 read;
its ``date_created`` was set before it was committed, so it is newer than what the page showed
at check k-2 unless committing it took longer than one whole interval. Each check re-reads at
most about two intervals of messages (cheap at chat rates, and keyed rows make the overlap
harmless).

Time is an input (seconds, any monotonic clock): the rules are tested in CPython with no timer.
"""

EVERY = 30.0  # seconds between two checks while subscribed
GRACE = 3.0  # seconds after an own write's answer that its event is overdue
REMEMBERED = 256  # ids of live events remembered (an own write's event may beat its answer)


class Reconciler:
    def __init__(self, every: float = EVERY, grace: float = GRACE) -> None:
        self.every = every
        self.grace = grace
        self.marks = []  # the newest date_created shown when each of the last checks started
        self.next_at = None  # when the slow timer checks next (None: not subscribed)
        self.overdue_at = {}  # id of an own answered write -> when its event is overdue
        self.delivered_ids = []  # the latest live events' ids, oldest first
        self.running = False

    def subscribed(self, now: float, newest) -> None:
        """(Re)subscribed, and the page reads back what came before: that read counts as a
        check that started with ``newest`` shown."""
        self.marks = [newest]
        self.next_at = now + self.every

    def unsubscribed(self) -> None:
        self.next_at = None
        self.overdue_at = {}

    def delivered(self, item_id) -> None:
        """A live event brought ``item_id``."""
        item_id = str(item_id)
        self.overdue_at.pop(item_id, None)
        self.delivered_ids.append(item_id)
        if len(self.delivered_ids) > REMEMBERED:
            del self.delivered_ids[: len(self.delivered_ids) - REMEMBERED]

    def wrote(self, item_id, now: float) -> None:
        """Directus answered one of the page's own writes: its event should come too."""
        item_id = str(item_id)
        if self.next_at is not None and item_id not in self.delivered_ids:
            self.overdue_at[item_id] = now + self.grace

    def next_deadline(self):
        """When ``due`` can next turn true (None: never, until something happens)."""
        times = list(self.overdue_at.values())
        if self.next_at is not None:
            times.append(self.next_at)
        return min(times) if times else None

    def due(self, now: float) -> bool:
        deadline = self.next_deadline()
        return not self.running and deadline is not None and now >= deadline

    def start(self, now: float, newest):
        """A check starts with ``newest`` shown; returns the ``date_created`` to read from
        (inclusive; None: nothing is shown, read the latest)."""
        self.running = True
        self.marks.append(newest)
        self.marks = self.marks[-3:]
        self.overdue_at = {k: t for k, t in self.overdue_at.items() if t > now}
        return self.marks[0] if len(self.marks) == 3 else self.marks[-2]

    def finished(self, now: float) -> None:
        self.running = False
        if self.next_at is not None:
            self.next_at = now + self.every
