# What the parts of RealtimeProtocol (session.py, requests.py, subscriptions.py) may use of
# one another, for the type checker only: at run time each part is a plain mixin of
# RealtimeProtocol (protocol.py), which holds the one state.
from typing import Any

from .events import Action, Report
from .protocol import Backoff
from .requests import _Request
from .subscriptions import _Subscription

class CoreState:
    state: str
    url: str
    auth_mode: str
    access_token: str | None
    email: str | None
    password: str | None
    refresh_token: str | None
    has_token_provider: bool
    heartbeat: bool
    heartbeat_period: float
    probes: bool
    connect_timeout: float | None
    request_timeout: float
    request_attempts: int
    outbox_limit: int
    send_rate: float | None
    paused_until: float | None
    reconnect: Backoff | bool
    _burst: float
    _tokens: float
    _tokens_at: float | None
    _subs_suspect_at: float | None
    # The _Connection of the socket, None between sockets: the parts read it only where one
    # exists (a reply came on it, or the state is open).
    _conn: Any
    _subs: dict[int, _Subscription]
    _outbox: list[_Request]
    _observed_period: float | None
    def connect(self, now: float) -> None: ...
    def _emit(self, event: Action | Report) -> None: ...
    def _send(self, message: dict[str, Any]) -> None: ...
    def _next_uid(self) -> str: ...
    def _next_key(self) -> int: ...
    def _abort(self, now: float, error: BaseException, reason: str) -> None: ...
    def _fail(self, error: BaseException, socket_open: bool = ...) -> None: ...
    def _became_open(self, now: float) -> None: ...
    def _send_subscription(self, sub: _Subscription) -> None: ...
    def _end_subscription(self, sub: _Subscription, error: BaseException | None) -> None: ...
    def _request_for(self, uid: object) -> _Request | None: ...
    def _on_request_error(self, req: _Request, error: Any, now: float) -> None: ...
    def _on_reply(self, message: dict[str, Any], now: float) -> None: ...
