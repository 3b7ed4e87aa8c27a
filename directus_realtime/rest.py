"""The few REST calls the realtime client needs: login and token refresh.

Two ways over HTTP, one reading of the answer (``answer``):

- ``rest()``: plain ``urllib``, so the same code runs in CPython and in Pyodide, where
  ``pyodide_http.patch_all()`` (done here, once) turns ``urllib`` into XHR;
- ``TokenSession(..., http=fetch_text)``: any ``async http(url, method, headers, body)`` that
  returns ``(status, text)``, e.g. the browser's ``fetch`` (``transports.browser.fetch_text``)
  on MicroPython, which has no ``urllib``.
"""

import json
import sys

from .errors import DirectusError, RealtimeError

# typing.TYPE_CHECKING without importing typing at run time (MicroPython has none).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_patched = False


def _ensure_http() -> None:
    global _patched
    if not _patched and sys.platform == "emscripten":
        import pyodide_http

        pyodide_http.patch_all()
    _patched = True


def headers_for(body: object = None, token: "str | None" = None) -> "dict[str, str]":
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    return headers


def answer(status: int, raw: "str | bytes | None") -> "Any":
    """Directus's answer: its ``data``, or ``DirectusError`` with its code and message."""
    if status >= 400:
        try:
            errors = json.loads(raw or "{}").get("errors") or [{}]
        except ValueError:
            errors = [{}]
        first = errors[0]
        raise DirectusError(
            (first.get("extensions") or {}).get("code") or "HTTP_%d" % status,
            first.get("message") or "Directus answered HTTP %d." % status,
        )
    return json.loads(raw).get("data") if raw else None


def rest(
    url: str,
    method: str,
    path: str,
    body: object = None,
    token: "str | None" = None,
    timeout: float = 10.0,
) -> "Any":
    """Call Directus's REST API over ``urllib``; returns the ``data`` of the answer."""
    import urllib.error
    import urllib.request

    _ensure_http()
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        url.rstrip("/") + path, data, headers_for(body, token), method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return answer(error.code, error.read())
    except OSError as error:
        raise RealtimeError("Could not reach Directus at " + url + ": " + str(error)) from None


async def rest_async(
    http: "Callable[..., Any]",
    url: str,
    method: str,
    path: str,
    body: object = None,
    token: "str | None" = None,
) -> "Any":
    """``rest()`` over an async ``http(url, method, headers, body) -> (status, text)``."""
    try:
        status, raw = await http(
            url.rstrip("/") + path,
            method,
            headers_for(body, token),
            None if body is None else json.dumps(body),
        )
    except Exception as error:
        raise RealtimeError("Could not reach Directus at " + url + ": " + str(error)) from None
    return answer(status, raw)


class TokenSession:
    """Logs in once and refreshes on demand: pass ``session.token`` as ``token_provider``.

    ``login()`` and ``token()`` are coroutines. Over ``urllib`` unless ``http`` is given (see
    the module's docstring).
    """

    def __init__(
        self, url: str, email: str, password: str, http: "Callable[..., Any] | None" = None
    ) -> None:
        self.url = url
        self._email = email
        self._password = password
        self._http = http
        self.access_token = None  # type: str | None
        self.refresh_token = None  # type: str | None

    async def login(self) -> str:
        """``POST /auth/login``."""
        body = {"email": self._email, "password": self._password, "mode": "json"}
        return self._keep(await self._post("/auth/login", body))

    async def token(self) -> str:
        """A fresh access token: refreshed when we have a refresh token, else a new login."""
        if self.refresh_token:
            try:
                body = {"refresh_token": self.refresh_token, "mode": "json"}
                return self._keep(await self._post("/auth/refresh", body))
            except DirectusError:
                pass  # the refresh token expired too: log in again
        return await self.login()

    async def _post(self, path: str, body: "dict[str, Any]") -> "Any":
        if self._http is None:
            return rest(self.url, "POST", path, body)
        return await rest_async(self._http, self.url, "POST", path, body)

    def _keep(self, answer: object) -> str:
        """Keep the tokens of a login or refresh answer; returns the access token."""
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise DirectusError(
                "NO_TOKEN", "Directus answered without an access token; check its auth settings."
            )
        self.access_token = token
        refresh = answer.get("refresh_token") if isinstance(answer, dict) else None
        self.refresh_token = refresh if isinstance(refresh, str) else None
        return token
