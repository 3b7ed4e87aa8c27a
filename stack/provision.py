"""Provision a Directus instance through its REST API as admin, idempotently.

What the guide "Connect to Realtime Data" needs, and what the tests need beside it:

- collection ``messages``: ``id`` (uuid primary key, generated when the client sends none),
  ``date_created`` (timestamp, set by Directus, indexed), ``date_updated`` (timestamp, set
  by Directus on every edit, indexed: live queries catch up on edits by it), ``text`` (text, at most
  ``MAX_TEXT_LENGTH`` characters), ``user`` (string);
- policy "Public Posts" (read + create on messages, all fields) and user demo@example.com
  with a static token, as in the guide;
- policy "Read Only Posts" (read) and user reader@example.com (a user that gets FORBIDDEN on
  create);
- policy "Editors" (read, create, update, delete) and user editor@example.com;
- collection ``clicks`` (``id``, an auto-increment integer; ``date_created``) for the example
  page examples/counter/, which "Public Posts" may read and create.

Everything is looked up first and only what is missing is created, so a second run changes
nothing. Passwords and tokens come from var/secrets.json (stack.credentials).
"""

from __future__ import annotations

from typing import Any

from .api import DirectusAPI, DirectusAPIError

COLLECTION = "messages"

# The page refuses longer texts itself (main.py); Directus refuses them too, so that no other
# client can store a message the page could not hold.
MAX_TEXT_LENGTH = 10_000

# A field validation rule (it binds admins as well as policies). Directus has no length
# operator, so a regular expression counts: one iteration per character, a surrogate pair
# being one character as in Python's len(); the lookahead, which JavaScript never backtracks
# into, keeps the match linear in the text's length. Empty and null texts stay allowed (a
# Joi string refuses both). The regular expression comes first: REST answers with every
# branch's error, in this order. Over the socket Directus 12.4 sends no answer at all to a
# write that fails validation (it logs "WebSocket unhandled exception"): the client's
# request times out, and nothing is stored.
TEXT_VALIDATION: dict[str, Any] = {
    "_or": [
        {
            "text": {
                "_regex": r"^(?:(?=([\uD800-\uDBFF][\uDC00-\uDFFF]|[\s\S]))\1){0,%d}$"
                % MAX_TEXT_LENGTH
            }
        },
        {"text": {"_null": True}},
        {"text": {"_empty": True}},
    ]
}
TEXT_VALIDATION_MESSAGE = f"A message is at most {MAX_TEXT_LENGTH:,} characters long."


def _timestamp(field: str, special: str) -> dict[str, Any]:
    """A read-only, indexed timestamp Directus sets itself (``special``)."""
    meta = {"special": [special], "interface": "datetime", "display": "datetime"}
    meta.update({"display_options": {"relative": True}, "readonly": True, "hidden": True})
    meta["width"] = "half"
    return {"field": field, "type": "timestamp", "meta": meta, "schema": {"is_indexed": True}}


FIELDS: list[dict[str, Any]] = [
    {
        "field": "id",
        "type": "uuid",
        "meta": {"special": ["uuid"], "interface": "input", "hidden": True, "readonly": True},
        "schema": {"is_primary_key": True, "length": 36, "has_auto_increment": False},
    },
    # Indexed: the page reads its history and catch-up sorted and bounded by date_created.
    _timestamp("date_created", "date-created"),
    # Indexed: a live query's check reads the rows edited since its last mark by it.
    _timestamp("date_updated", "date-updated"),
    {
        "field": "text",
        "type": "text",
        "meta": {
            "interface": "input-multiline",
            "validation": TEXT_VALIDATION,
            "validation_message": TEXT_VALIDATION_MESSAGE,
        },
        "schema": {},
    },
    {"field": "user", "type": "string", "meta": {"interface": "input"}, "schema": {}},
]

POLICIES: dict[str, dict[str, Any]] = {
    "Public Posts": {
        "actions": ["read", "create"],
        "description": "Read and create messages (the guide's policy).",
    },
    "Read Only Posts": {
        "actions": ["read"],
        "description": "Read messages only (tests: create is FORBIDDEN).",
    },
    "Editors": {
        "actions": ["read", "create", "update", "delete"],
        "description": "Read, create, update and delete messages (tests).",
    },
}

# (credentials key prefix, first name, policy)
USERS: list[tuple[str, str, str]] = [
    ("demo", "Demo", "Public Posts"),
    ("reader", "Reader", "Read Only Posts"),
    ("editor", "Editor", "Editors"),
]


def _eq(field: str, value: Any) -> dict[str, Any]:
    return {field: {"_eq": value}}


def ensure_collection(api: DirectusAPI, changes: list[str]) -> None:
    names = {c["collection"] for c in api.get("/collections", fields=["collection"])}
    if COLLECTION not in names:
        api.post(
            "/collections",
            {
                "collection": COLLECTION,
                "meta": {"icon": "chat", "note": "Chat messages (Connect to Realtime Data)"},
                "schema": {},
                "fields": FIELDS,
            },
        )
        changes.append(f"created collection {COLLECTION}")
        return
    have = {f["field"]: f for f in api.get(f"/fields/{COLLECTION}")}
    for spec in FIELDS:
        if spec["field"] not in have:
            if spec["schema"].get("is_primary_key"):
                raise RuntimeError(f"collection {COLLECTION} exists without primary key id")
            api.post(f"/fields/{COLLECTION}", spec)
            changes.append(f"created field {COLLECTION}.{spec['field']}")
            continue
        indexed = (have[spec["field"]].get("schema") or {}).get("is_indexed")
        if spec["schema"].get("is_indexed") and not indexed:
            api.patch(f"/fields/{COLLECTION}/{spec['field']}", {"schema": {"is_indexed": True}})
            changes.append(f"indexed {COLLECTION}.{spec['field']}")
        meta = have[spec["field"]].get("meta") or {}
        rules = {
            k: spec["meta"][k] for k in ("validation", "validation_message") if k in spec["meta"]
        }
        if any(meta.get(k) != v for k, v in rules.items()):
            api.patch(f"/fields/{COLLECTION}/{spec['field']}", {"meta": rules})
            changes.append(f"validation of {COLLECTION}.{spec['field']} set")


def ensure_policy(api: DirectusAPI, name: str, spec: dict[str, Any], changes: list[str]) -> str:
    found = api.get("/policies", filter=_eq("name", name), fields=["id"], limit=-1)
    if found:
        policy_id = found[0]["id"]
    else:
        policy_id = api.post(
            "/policies",
            {
                "name": name,
                "icon": "chat",
                "description": spec["description"],
                "admin_access": False,
                "app_access": False,
            },
        )["id"]
        changes.append(f"created policy {name!r}")
    perms = api.get(
        "/permissions",
        filter={"_and": [_eq("policy", policy_id), _eq("collection", COLLECTION)]},
        fields=["id", "action"],
        limit=-1,
    )
    have = {p["action"] for p in perms}
    for action in spec["actions"]:
        if action not in have:
            api.post(
                "/permissions",
                {
                    "policy": policy_id,
                    "collection": COLLECTION,
                    "action": action,
                    "fields": ["*"],
                    "permissions": {},
                    "validation": {},
                },
            )
            changes.append(f"created permission {action} on {COLLECTION} for {name!r}")
    return policy_id


def ensure_user(
    api: DirectusAPI,
    *,
    email: str,
    password: str,
    token: str,
    first_name: str,
    policy_id: str,
    changes: list[str],
) -> str:
    found = api.get(
        "/users", filter=_eq("email", email), fields=["id", "status", "policies.policy"], limit=-1
    )
    if not found:
        user_id = api.post(
            "/users",
            {
                "email": email,
                "password": password,
                "first_name": first_name,
                "token": token,
                "status": "active",
                "policies": [{"policy": policy_id}],
            },
        )["id"]
        changes.append(f"created user {email}")
        return user_id
    user = found[0]
    user_id = user["id"]
    patch: dict[str, Any] = {}
    if user.get("status") != "active":
        patch["status"] = "active"
    attached = {p.get("policy") for p in user.get("policies") or [] if isinstance(p, dict)}
    if policy_id not in attached:
        patch["policies"] = {"create": [{"policy": policy_id}]}
    # The stored token reads back concealed; check that it still authenticates.
    if DirectusAPI(api.base_url, token).request("GET", "/users/me").status != 200:
        patch["token"] = token
    if patch:
        api.patch(f"/users/{user_id}", patch)
        changes.append(f"updated user {email}: {', '.join(sorted(patch))}")
    return user_id


# The example page's collection (examples/counter/): one row per click.
EXAMPLE_COLLECTION = "clicks"
EXAMPLE_FIELDS: list[dict[str, Any]] = [
    {
        "field": "id",
        "type": "integer",
        "meta": {"hidden": True, "readonly": True, "interface": "input"},
        "schema": {"is_primary_key": True, "has_auto_increment": True},
    },
    {
        "field": "date_created",
        "type": "timestamp",
        "meta": {"special": ["date-created"], "readonly": True, "hidden": True},
        "schema": {},
    },
]


def ensure_example_collection(api: DirectusAPI, policy_id: str, changes: list[str]) -> None:
    """The ``clicks`` collection of examples/counter/, readable and creatable by ``policy_id``."""
    names = {c["collection"] for c in api.get("/collections", fields=["collection"])}
    if EXAMPLE_COLLECTION not in names:
        api.post(
            "/collections",
            {
                "collection": EXAMPLE_COLLECTION,
                "meta": {"icon": "ads_click", "note": "Clicks of the example counter page"},
                "schema": {},
                "fields": EXAMPLE_FIELDS,
            },
        )
        changes.append(f"created collection {EXAMPLE_COLLECTION}")
    perms = api.get(
        "/permissions",
        filter={"_and": [_eq("policy", policy_id), _eq("collection", EXAMPLE_COLLECTION)]},
        fields=["action"],
        limit=-1,
    )
    have = {p["action"] for p in perms}
    for action in ("read", "create"):
        if action not in have:
            api.post(
                "/permissions",
                {
                    "policy": policy_id,
                    "collection": EXAMPLE_COLLECTION,
                    "action": action,
                    "fields": ["*"],
                    "permissions": {},
                    "validation": {},
                },
            )
            changes.append(f"created permission {action} on {EXAMPLE_COLLECTION}")


def provision(base_url: str, secrets: dict[str, str]) -> list[str]:
    """Bring the Directus at base_url to the wanted state; returns what was changed."""
    try:
        api = DirectusAPI.login(base_url, secrets["admin_email"], secrets["admin_password"])
    except DirectusAPIError as err:
        raise RuntimeError(
            f"admin login to {base_url} failed ({err}); the database was probably made with "
            "other secrets than var/secrets.json: `make down`, delete var/directus.db* and "
            "start again"
        ) from err
    changes: list[str] = []
    ensure_collection(api, changes)
    policy_ids = {name: ensure_policy(api, name, spec, changes) for name, spec in POLICIES.items()}
    ensure_example_collection(api, policy_ids["Public Posts"], changes)
    for key, first_name, policy in USERS:
        ensure_user(
            api,
            email=secrets[f"{key}_email"],
            password=secrets[f"{key}_password"],
            token=secrets[f"{key}_token"],
            first_name=first_name,
            policy_id=policy_ids[policy],
            changes=changes,
        )
    return changes
