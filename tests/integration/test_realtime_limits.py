"""Limits the main stack's Directus enforces for every client: a message's ``text`` is at most
10,000 characters (stack/provision.py), as the page itself refuses longer ones. Characters are
counted as Python's ``len()`` counts them, so an emoji (a surrogate pair in JavaScript) is one.

Over REST a longer text is answered with 400 FAILED_VALIDATION. Over the socket Directus 12.4
stores nothing and answers nothing (its socket error handler drops a list of validation
errors), so the request ends with the client's RequestTimeout and the connection goes on.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from directus_realtime import RequestTimeout
from stack import credentials
from stack.provision import MAX_TEXT_LENGTH, TEXT_VALIDATION, provision

pytestmark = pytest.mark.usefixtures("main_rows")

WAIT = 15.0
TEST_USER = "pytest-realtime"  # the user main_rows cleans up after


def text_of(length: int, marker: str, fill: str = "x") -> str:
    return marker + fill * (length - len(marker))


def stored(admin_api, marker: str) -> list[int]:
    """The lengths of the stored texts that start with ``marker``."""
    rows = admin_api.get(
        "/items/messages", filter={"text": {"_starts_with": marker}}, fields=["text"], limit=-1
    )
    return sorted(len(row["text"]) for row in rows)


def create(text: str) -> dict:
    data = {"text": text, "user": TEST_USER}
    return {"type": "items", "collection": "messages", "action": "create", "data": data}


async def test_a_text_over_the_limit_is_not_stored_over_the_socket(rt, stack, admin_api):
    assert MAX_TEXT_LENGTH == 10_000
    marker = rt.marker("limit")
    client = await rt.connected(stack["directus_url"], access_token=stack["token"])
    with pytest.raises(RequestTimeout):
        await asyncio.wait_for(client.request(create(text_of(10_001, marker)), timeout=3), WAIT)
    assert client.is_connected, rt.describe(client)  # a refused write is no connection problem
    reply = await asyncio.wait_for(client.request(create(text_of(10_000, marker))), WAIT)
    assert len(reply["data"]["text"]) == 10_000
    assert stored(admin_api, marker) == [10_000]


def test_a_text_over_the_limit_is_refused_over_rest_even_for_the_admin(api, stack, admin_api):
    marker = "rest-" + uuid.uuid4().hex[:12]
    row = {"text": text_of(10_001, marker), "user": TEST_USER}
    for who in (api(stack["token"]), admin_api):
        response = who.request("POST", "/items/messages", row)
        assert response.status == 400, response.body
        assert set(response.error_codes) == {"FAILED_VALIDATION"}, response.body
    for text in (text_of(10_000, marker), "", None):
        response = api(stack["token"]).request("POST", "/items/messages", dict(row, text=text))
        assert response.status == 200, response.body
    assert stored(admin_api, marker) == [10_000]


async def test_characters_are_counted_as_python_counts_them(rt, api, stack, admin_api):
    marker = rt.marker("emoji")
    longest = text_of(10_000, marker, "😀")  # 20,000 UTF-16 code units in JavaScript
    client = await rt.connected(stack["directus_url"], access_token=stack["token"])
    reply = await asyncio.wait_for(client.request(create(longest)), WAIT)
    assert reply["data"]["text"] == longest
    too_long = {"text": longest + "😀", "user": TEST_USER}
    response = api(stack["token"]).request("POST", "/items/messages", too_long)
    assert response.status == 400, response.body
    assert stored(admin_api, marker) == [10_000]


def test_provisioning_keeps_the_rule_and_changes_nothing_the_second_time(stack, admin_api):
    field = admin_api.get("/fields/messages/text")
    assert field["meta"]["validation"] == TEXT_VALIDATION
    changes = provision(stack["directus_url"], credentials.load())
    assert changes == [], changes
