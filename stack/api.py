"""A tiny Directus REST client on urllib (no dependencies), for provisioning and tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    body: Any  # the decoded JSON, or the raw text when the answer is not JSON
    headers: dict[str, str]

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def error_codes(self) -> list[str]:
        if not isinstance(self.body, dict):
            return []
        return [e.get("extensions", {}).get("code", "") for e in self.body.get("errors", [])]


def _param(value: Any) -> str:
    """Query values: dicts (filter, deep) as JSON, lists (fields, sort) comma-separated."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


class DirectusAPIError(RuntimeError):
    def __init__(self, method: str, path: str, resp: Response):
        super().__init__(f"{method} {path} -> {resp.status}: {resp.body}")
        self.response = resp


class DirectusAPI:
    """``DirectusAPI(url, token=None)``; ``request()`` returns a Response whatever the status,
    ``call()`` returns ``data`` and raises DirectusAPIError on an HTTP error."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._credentials: tuple[str, str] | None = None

    @classmethod
    def login(cls, base_url: str, email: str, password: str) -> DirectusAPI:
        """Logged in with email and password; logs in again when the access token expires."""
        api = cls(base_url)
        api._credentials = (email, password)
        api._login()
        return api

    def _login(self) -> None:
        assert self._credentials is not None
        email, password = self._credentials
        self.token = None
        data = self.call("POST", "/auth/login", {"email": email, "password": password})
        self.token = data["access_token"]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        resp = self._request(method, path, body, params, headers)
        if resp.status == 401 and self._credentials and path != "/auth/login":
            self._login()
            resp = self._request(method, path, body, params, headers)
        return resp

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
    ) -> Response:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: _param(v) for k, v in params.items()})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            status, raw, hdrs = err.code, err.read(), dict(err.headers)
        text = raw.decode(errors="replace")
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Response(status, parsed, hdrs)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self.request(method, path, body, params or None)
        if resp.status >= 400:
            raise DirectusAPIError(method, path, resp)
        return resp.data

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def post(self, path: str, body: Any) -> Any:
        return self.call("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, body)
