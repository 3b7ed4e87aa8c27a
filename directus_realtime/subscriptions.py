"""Subscriptions and their routing, a part of the sans-I/O core (``protocol.RealtimeProtocol``).

A subscription is registered once and sent on every connection with a fresh uid (or the one
the user chose); messages are routed to it by uid; its ``init`` confirms it. What it missed
while disconnected is the live query's business (``window.py``), not this part's.
"""

from .events import SubscriptionEnded, SubscriptionMessage

OPEN = "open"  # (protocol.OPEN)


class Subscriptions:
    """The subscription half of ``RealtimeProtocol`` (a mixin: ``_subs`` and
    ``_conn.subs_by_uid`` are this part's own)."""

    def subscribe(self, collection, event=None, query=None, uid=None, item=None):
        """Register a subscription; sent now when open, else on every (re)connect. Returns a key."""
        message = {"type": "subscribe", "collection": collection}
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

    def unsubscribe(self, key):
        sub = self._subs.pop(key, None)
        if sub is None:
            return
        if sub.uid is not None:
            if self._conn is not None:
                self._conn.subs_by_uid.pop(sub.uid, None)
            if self.state == OPEN:
                self._send({"type": "unsubscribe", "uid": sub.uid})
        self._emit(SubscriptionEnded(key, None))

    def _send_subscription(self, sub):
        subs_by_uid = self._conn.subs_by_uid
        if sub.uid is not None:
            subs_by_uid.pop(sub.uid, None)
        sub.uid = sub.fixed_uid if sub.fixed_uid is not None else self._next_uid()
        sub.confirmed = False
        subs_by_uid[sub.uid] = sub
        message = dict(sub.message)
        message["uid"] = sub.uid
        self._send(message)

    def _on_subscription(self, message):
        sub = self._conn.subs_by_uid.get(message.get("uid"))
        if sub is None:
            return  # an unsubscribed subscription's last words
        if message.get("event") == "init":
            sub.confirmed = True
        self._emit(SubscriptionMessage(sub.key, message))

    def _end_subscription(self, sub, error):
        self._subs.pop(sub.key, None)
        if self._conn is not None:
            self._conn.subs_by_uid.pop(sub.uid, None)
        self._emit(SubscriptionEnded(sub.key, error))


class _Subscription:
    def __init__(self, key, message, fixed_uid):
        self.key = key
        self.message = message  # the subscribe message without uid
        self.fixed_uid = fixed_uid  # a uid the user chose; else a fresh one per connection
        self.uid = None  # the uid on the current connection
        self.confirmed = False
        self.missed = False  # events were lost to an expired token: subscribe again
