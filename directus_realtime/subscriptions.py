"""Subscriptions and their routing, a part of the sans-I/O core (``protocol.RealtimeProtocol``).

A subscription is registered once and sent on every connection with a fresh uid (or the one
the user chose); messages are routed to it by uid; its ``init`` confirms it. What it missed
while disconnected is the live query's business (``window.py``), not this part's.
"""

from .events import SubscriptionEnded, SubscriptionMessage

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._core import CoreState
else:
    CoreState = object


OPEN = "open"  # (protocol.OPEN)


class Subscriptions(CoreState):
    """The subscription half of ``RealtimeProtocol`` (a mixin: ``_subs`` and
    ``_conn.subs_by_uid`` are this part's own)."""

    def subscribe(
        self,
        collection: str,
        event: "str | None" = None,
        query: "dict[str, Any] | None" = None,
        uid: "str | None" = None,
        item: "str | int | None" = None,
    ) -> int:
        """Register a subscription; sent now when open, else on every (re)connect. Returns a key."""
        message: dict[str, Any] = {"type": "subscribe", "collection": collection}
        if event is not None:
            message["event"] = event
        if query is not None:
            message["query"] = query
        if item is not None:
            message["item"] = item
        key = self._next_key()
        sub = _Subscription(key, message, uid)
        self._subs[key] = sub
        if self.state == OPEN:
            self._send_subscription(sub)
        return key

    def unsubscribe(self, key: int) -> None:
        sub = self._subs.pop(key, None)
        if sub is None:
            return
        if sub.uid is not None:
            if self._conn is not None:
                self._conn.subs_by_uid.pop(sub.uid, None)
            if self.state == OPEN:
                self._send({"type": "unsubscribe", "uid": sub.uid})
        self._emit(SubscriptionEnded(key, None))

    def _send_subscription(self, sub: "_Subscription") -> None:
        subs_by_uid = self._conn.subs_by_uid
        if sub.uid is not None:
            subs_by_uid.pop(sub.uid, None)
        sub.uid = sub.fixed_uid if sub.fixed_uid is not None else self._next_uid()
        sub.confirmed = False
        subs_by_uid[sub.uid] = sub
        message = dict(sub.message)
        message["uid"] = sub.uid
        self._send(message)

    def _on_subscription(self, message: "dict[str, Any]") -> None:
        sub = self._conn.subs_by_uid.get(message.get("uid"))
        if sub is None:
            return  # an unsubscribed subscription's last words
        if message.get("event") == "init":
            sub.confirmed = True
        self._emit(SubscriptionMessage(sub.key, message))

    def _end_subscription(self, sub: "_Subscription", error: "BaseException | None") -> None:
        self._subs.pop(sub.key, None)
        if self._conn is not None:
            self._conn.subs_by_uid.pop(sub.uid, None)
        self._emit(SubscriptionEnded(sub.key, error))


class _Subscription:
    def __init__(self, key: int, message: "dict[str, Any]", fixed_uid: "str | None") -> None:
        self.key = key
        self.message = message  # the subscribe message without uid
        self.fixed_uid = fixed_uid  # a uid the user chose; else a fresh one per connection
        self.uid: str | None = None  # the uid on the current connection
        self.confirmed = False
        self.missed = False  # events were lost to an expired token: subscribe again
