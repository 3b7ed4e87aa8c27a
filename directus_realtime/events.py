"""What the sans-I/O core (``protocol.RealtimeProtocol``) hands its driver from ``events()``.

Two kinds, kept apart: ``Action`` (something the driver must do: open, send, close, fetch a
token) and ``Report`` (something to tell the user: opened, closed, a message, a reply...).
``client.py`` dispatches them with one table, by class.
"""

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Shown:
    """A ``__repr__`` that shows the fields: ``SendText(text='{...}')``."""

    def __repr__(self) -> str:
        fields = ", ".join("%s=%r" % (k, v) for k, v in sorted(self.__dict__.items()))
        return "%s(%s)" % (type(self).__name__, fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    __hash__ = None  # type: ignore[assignment]


class Action(_Shown):
    """Something the driver must do."""


class Report(_Shown):
    """Something to deliver to the user."""


class OpenSocket(Action):
    """Open a WebSocket to ``url``; report back with socket_opened / socket_closed."""

    def __init__(self, url: str) -> None:
        self.url = url


class SendText(Action):
    """Send ``text`` as one text frame on the current socket."""

    def __init__(self, text: str) -> None:
        self.text = text


class CloseSocket(Action):
    """Close the current socket (the machine already considers it gone)."""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason


class ScheduleRefresh(Action):
    """Fetch a fresh access token (``token_provider``) and pass it to ``authenticate()``."""


class Opened(Report):
    """The connection is open and authenticated: the SDK's ``open`` event."""


class Closed(Report):
    """The socket closed: the SDK's ``close`` event."""

    def __init__(self, code: "int | None" = None, reason: str = "") -> None:
        self.code = code
        self.reason = reason


class ErrorOccurred(Report):
    """The SDK's ``error`` event: a socket error, a bad frame, or an error nobody asked for."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class MessageReceived(Report):
    """Every decoded message from the server (the SDK's ``message`` event), pings excepted."""

    def __init__(self, message: "dict[str, Any]") -> None:
        self.message = message


class StateChanged(Report):
    def __init__(self, state: str, previous: str) -> None:
        self.state = state
        self.previous = previous


class SubscriptionMessage(Report):
    """A ``{type: "subscription", event, data, uid}`` message for subscription ``key``."""

    def __init__(self, key: int, message: "dict[str, Any]") -> None:
        self.key = key
        self.message = message


class SubscriptionEnded(Report):
    """Subscription ``key`` will get nothing more; ``error`` is None when it was unsubscribed."""

    def __init__(self, key: int, error: "BaseException | None" = None) -> None:
        self.key = key
        self.error = error


class RequestDone(Report):
    def __init__(self, key: "int | None", reply: "dict[str, Any]") -> None:
        self.key = key
        self.reply = reply

    @property
    def data(self) -> object:
        return self.reply.get("data")


class RequestFailed(Report):
    def __init__(self, key: "int | None", error: BaseException) -> None:
        self.key = key
        self.error = error
