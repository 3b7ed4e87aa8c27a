"""The few REST calls the realtime client needs: login and token refresh.

Plain ``urllib``, so the same code runs in CPython and in the browser, where
``pyodide_http.patch_all()`` (done here, once) turns ``urllib`` into XHR.
"""

import json
import sys
import urllib.error
import urllib.request

from .errors import DirectusError, RealtimeError

_patched = False


def _ensure_http():
    global _patched
    if not _patched and sys.platform == "emscripten":
        import pyodide_http

        pyodide_http.patch_all()
    _patched = True


def rest(url: str, method: str, path: str, body=None, token=None, timeout: float = 10.0):
    """Call Directus's REST API; returns the ``data`` of the answer, raises ``DirectusError``."""
    _ensure_http()
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(url.rstrip("/") + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            errors = json.loads(raw or b"{}").get("errors") or [{}]
        except ValueError:
            errors = [{}]
        first = errors[0]
        raise DirectusError(
            (first.get("extensions") or {}).get("code") or "HTTP_%d" % error.code,
            first.get("message") or "Directus answered HTTP %d." % error.code,
        ) from None
    except OSError as error:
        raise RealtimeError("Could not reach Directus at " + url + ": " + str(error)) from None
    return json.loads(raw).get("data") if raw else None


def login(url: str, email: str, password: str) -> dict:
    """``POST /auth/login``: ``{access_token, refresh_token, expires}``."""
    return rest(url, "POST", "/auth/login", {"email": email, "password": password, "mode": "json"})


def refresh(url: str, refresh_token: str) -> dict:
    """``POST /auth/refresh``: a new ``{access_token, refresh_token, expires}``."""
    return rest(url, "POST", "/auth/refresh", {"refresh_token": refresh_token, "mode": "json"})


class TokenSession:
    """Logs in once and refreshes on demand: pass ``session.token`` as ``token_provider``."""

    def __init__(self, url: str, email: str, password: str) -> None:
        self.url = url
        self._email = email
        self._password = password
        self.access_token = None
        self.refresh_token = None

    def login(self) -> str:
        self._keep(login(self.url, self._email, self._password))
        return self.access_token

    def token(self) -> str:
        """A fresh access token: refreshed when we have a refresh token, else a new login."""
        if self.refresh_token:
            try:
                self._keep(refresh(self.url, self.refresh_token))
                return self.access_token
            except DirectusError:
                pass  # the refresh token expired too: log in again
        return self.login()

    def _keep(self, answer: dict) -> None:
        self.access_token = answer["access_token"]
        self.refresh_token = answer.get("refresh_token")
