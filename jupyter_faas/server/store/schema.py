"""The function server's SQLite schema, as constants.

Bump :data:`SCHEMA_VERSION` and add an entry to :data:`UPGRADES` whenever a
table changes; :func:`jupyter_faas.server.store.db.Database.open` applies the
upgrades in order and refuses a database written by a newer version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from .keys import hash_key, is_hashed

#: Version of the schema this code writes; stored in ``meta`` under ``schema_version``.
SCHEMA_VERSION = 2

#: Statements creating the current schema on an empty database.
CREATE = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    # One row per namespace; a namespace has exactly one subject (uuid:key). "key" holds
    # the salted digest of the key (store.keys), never the key; "generation" counts the
    # key's rotations. meta's "auth_epoch" changes with every rotation or deletion, so a
    # running server knows to drop the subjects it has cached.
    """CREATE TABLE IF NOT EXISTS namespaces (
        name TEXT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        created INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0)""",
    # Actions, triggers, rules and packages share one name space per namespace,
    # as in OpenWhisk (an action and a trigger cannot share a name). Actions in
    # packages are stored under "pkg/name".
    """CREATE TABLE IF NOT EXISTS entities (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        collection TEXT NOT NULL,
        doc TEXT NOT NULL,
        updated INTEGER NOT NULL,
        PRIMARY KEY (namespace, name))""",
    """CREATE INDEX IF NOT EXISTS entities_by_collection
        ON entities (namespace, collection, updated DESC)""",
    # Finished activations; "path" is the action path without namespace
    # ("pkg/name" or "name"), used by the name filter of the list route.
    """CREATE TABLE IF NOT EXISTS activations (
        id TEXT PRIMARY KEY,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        status INTEGER NOT NULL,
        doc TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS activations_by_start
        ON activations (namespace, start DESC)""",
    # Accepted activations that have no record yet; "started" is set once a
    # container slot was taken, so a restart can tell re-runnable work apart.
    """CREATE TABLE IF NOT EXISTS pending (
        id TEXT PRIMARY KEY,
        accepted INTEGER NOT NULL,
        started INTEGER NOT NULL DEFAULT 0,
        job TEXT NOT NULL)""",
    # Alarm feeds: one per trigger.
    """CREATE TABLE IF NOT EXISTS alarms (
        namespace TEXT NOT NULL,
        trigger TEXT NOT NULL,
        owner TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (namespace, trigger))""",
)


def _hash_plain_keys(conn: sqlite3.Connection) -> None:
    """Version 1 stored keys in plain text: replace each by its digest (the key still works)."""
    rows = conn.execute("SELECT name, key FROM namespaces").fetchall()
    for name, key in rows:
        if not is_hashed(key):
            conn.execute("UPDATE namespaces SET key = ? WHERE name = ?", (hash_key(key), name))


#: Upgrade steps: ``{from_version: (SQL statement or callable(conn), ...)}``, in order.
UPGRADES: dict[int, tuple[str | Callable[[sqlite3.Connection], None], ...]] = {
    1: (
        "ALTER TABLE namespaces ADD COLUMN generation INTEGER NOT NULL DEFAULT 0",
        _hash_plain_keys,
    ),
}
