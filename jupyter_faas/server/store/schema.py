"""The function server's SQLite schema, as constants.

Bump :data:`SCHEMA_VERSION` and add an entry to :data:`UPGRADES` whenever a
table changes; :func:`jupyter_faas.server.store.db.Database.open` applies the
upgrades in order and refuses a database written by a newer version.
"""

from __future__ import annotations

#: Version of the schema this code writes; stored in ``meta`` under ``schema_version``.
SCHEMA_VERSION = 1

#: Statements creating the current schema on an empty database.
CREATE = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    # One row per namespace; a namespace has exactly one subject (uuid:key).
    """CREATE TABLE IF NOT EXISTS namespaces (
        name TEXT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        created INTEGER NOT NULL)""",
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

#: Upgrade steps: ``{from_version: (statements...)}``, applied in order.
UPGRADES: dict[int, tuple[str, ...]] = {}
