"""Errors a user of the client can meet. Each says what happened and what to do."""

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class RealtimeError(Exception):
    """Base class of every error raised by ``directus_realtime``."""

    code = "REALTIME_ERROR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.code + ": " + self.message


class DirectusError(RealtimeError):
    """Directus answered with ``status: "error"``; ``code`` and ``message`` are Directus's own."""

    def __init__(self, code: str, message: str, reply: "dict[str, Any] | None" = None) -> None:
        super().__init__(message, code)
        self.reply = reply or {}

    @classmethod
    def from_reply(cls, reply: "dict[str, Any]") -> "DirectusError":
        error = reply.get("error") or {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        code = str(error.get("code") or "UNKNOWN")
        message = str(error.get("message") or "Directus reported an error without a message.")
        return cls(code, message, reply)


class AuthenticationError(DirectusError):
    """Directus refused the credentials. Reconnecting will not help: change the token."""


class ConnectionLost(RealtimeError):
    """The socket closed before Directus answered a request."""

    code = "CONNECTION_LOST"


class ConnectionFailed(RealtimeError):
    """The client gave up connecting (retries used up, or ``disconnect()`` was called)."""

    code = "CONNECTION_FAILED"


class RequestTimeout(RealtimeError):
    """Directus did not answer a request in time (a request that is safe to send again: in
    ``request_attempts`` attempts, each on a new connection). It may still have been carried
    out: read before writing it again."""

    code = "TIMEOUT"


class OutboxFull(RealtimeError):
    """Too many writes are waiting for the connection to come back."""

    code = "OUTBOX_FULL"


class InvalidFrame(RealtimeError):
    """The server sent a frame that is no Directus message: not JSON, not a JSON object, a uid
    that is neither a string nor a number, or too big to decode. It is reported as an
    ``error`` event and skipped; the connection goes on."""

    code = "INVALID_FRAME"
