"""Queries on the server database; each takes a connection as first argument.

Run them through :class:`~jupyter_faas.server.store.db.Database` (``read`` /
``write``), which supplies the connection, the thread and the transaction.
Documents are stored as compact JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .keys import hash_key


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


# -- namespaces -------------------------------------------------------------------------


def add_namespace(conn: sqlite3.Connection, name: str, uuid: str, key: str, now: int) -> bool:
    """Create namespace ``name`` with subject ``uuid:key`` (the key stored as a salted digest);
    False if it exists already."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO namespaces (name, uuid, key, created) VALUES (?, ?, ?, ?)",
        (name, uuid, hash_key(key), now),
    )
    if cur.rowcount == 1:
        _bump_auth_epoch(conn)
    return cur.rowcount == 1


def namespace_subject(conn: sqlite3.Connection, name: str) -> tuple[str, str] | None:
    """``(uuid, "")`` of namespace ``name``, or None.

    The key itself is not stored (only its digest), so the second item is always empty.
    """
    row = conn.execute("SELECT uuid FROM namespaces WHERE name = ?", (name,)).fetchone()
    return (row["uuid"], "") if row else None


def namespace_names(conn: sqlite3.Connection) -> list[str]:
    """The names of all namespaces."""
    return [row["name"] for row in conn.execute("SELECT name FROM namespaces ORDER BY name")]


def subject_by_uuid(conn: sqlite3.Connection, uuid: str) -> tuple[str, str] | None:
    """``(namespace, "")`` of the subject ``uuid``, or None (the key is not stored)."""
    row = conn.execute("SELECT name FROM namespaces WHERE uuid = ?", (uuid,)).fetchone()
    return (row["name"], "") if row else None


def subject_digest(conn: sqlite3.Connection, uuid: str) -> tuple[str, str] | None:
    """``(namespace, key digest)`` of the subject ``uuid``, for checking a key; or None."""
    row = conn.execute("SELECT name, key FROM namespaces WHERE uuid = ?", (uuid,)).fetchone()
    return (row["name"], row["key"]) if row else None


def auth_epoch(conn: sqlite3.Connection) -> int:
    """A number that changes whenever a key is created, rotated or a namespace deleted."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'auth_epoch'").fetchone()
    return int(row["value"]) if row else 0


def _bump_auth_epoch(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('auth_epoch', '1') ON CONFLICT(key) "
        "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
    )


def rotate_key(conn: sqlite3.Connection, name: str, key: str) -> str | None:
    """Give namespace ``name`` the new ``key`` (same uuid); its uuid, or None if no such one."""
    cur = conn.execute(
        "UPDATE namespaces SET key = ?, generation = generation + 1 WHERE name = ?",
        (hash_key(key), name),
    )
    if cur.rowcount != 1:
        return None
    _bump_auth_epoch(conn)
    return conn.execute("SELECT uuid FROM namespaces WHERE name = ?", (name,)).fetchone()[0]


def delete_namespace(conn: sqlite3.Connection, name: str) -> dict[str, int] | None:
    """Remove namespace ``name`` with its entities, activations, pending work and alarms.

    Returns:
        How many rows of each kind went, or None when there is no such namespace.
    """
    row = conn.execute("SELECT uuid FROM namespaces WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    pending = [
        r["id"]
        for r in conn.execute("SELECT id, job FROM pending")
        if json.loads(r["job"]).get("subject") == row["uuid"]
    ]
    conn.executemany("DELETE FROM pending WHERE id = ?", [(i,) for i in pending])
    counts = {"pending": len(pending)}
    for table in ("entities", "activations", "alarms"):
        counts[table] = conn.execute(f"DELETE FROM {table} WHERE namespace = ?", (name,)).rowcount
    conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))
    _bump_auth_epoch(conn)
    return counts


# -- entities ---------------------------------------------------------------------------


def get_entity(conn: sqlite3.Connection, namespace: str, name: str) -> tuple[str, dict] | None:
    """``(collection, doc)`` of entity ``namespace/name``, or None."""
    row = conn.execute(
        "SELECT collection, doc FROM entities WHERE namespace = ? AND name = ?", (namespace, name)
    ).fetchone()
    return (row["collection"], json.loads(row["doc"])) if row else None


def put_entity(
    conn: sqlite3.Connection, namespace: str, name: str, collection: str, doc: dict
) -> None:
    """Insert or replace an entity; ``doc["updated"]`` orders lists."""
    conn.execute(
        "INSERT OR REPLACE INTO entities (namespace, name, collection, doc, updated) "
        "VALUES (?, ?, ?, ?, ?)",
        (namespace, name, collection, _dumps(doc), doc["updated"]),
    )


def delete_entity(conn: sqlite3.Connection, namespace: str, name: str) -> None:
    """Remove an entity (no error when it is gone already)."""
    conn.execute("DELETE FROM entities WHERE namespace = ? AND name = ?", (namespace, name))


def list_entities(
    conn: sqlite3.Connection,
    namespace: str,
    collection: str,
    limit: int | None = None,
    skip: int = 0,
    prefix: str | None = None,
) -> list[dict]:
    """Entities of a collection, newest first; ``prefix`` selects ``"pkg/"`` members."""
    sql = "SELECT doc FROM entities WHERE namespace = ? AND collection = ?"
    args: list[Any] = [namespace, collection]
    if prefix is not None:
        sql += " AND substr(name, 1, ?) = ?"
        args += [len(prefix), prefix]
    sql += " ORDER BY updated DESC, rowid DESC LIMIT ? OFFSET ?"
    args += [-1 if limit is None else limit, skip]
    return [json.loads(row["doc"]) for row in conn.execute(sql, args)]


def count_entities(
    conn: sqlite3.Connection, namespace: str, collection: str, prefix: str | None = None
) -> int:
    """How many entities :func:`list_entities` would return without limit."""
    sql = "SELECT count(*) FROM entities WHERE namespace = ? AND collection = ?"
    args: list[Any] = [namespace, collection]
    if prefix is not None:
        sql += " AND substr(name, 1, ?) = ?"
        args += [len(prefix), prefix]
    return conn.execute(sql, args).fetchone()[0]


def delete_prefix(conn: sqlite3.Connection, namespace: str, prefix: str) -> int:
    """Delete every entity whose name starts with ``prefix`` (a package's actions)."""
    cur = conn.execute(
        "DELETE FROM entities WHERE namespace = ? AND substr(name, 1, ?) = ?",
        (namespace, len(prefix), prefix),
    )
    return cur.rowcount


# -- activations ------------------------------------------------------------------------


def put_activation(conn: sqlite3.Connection, doc: dict, path: str) -> None:
    """Store a finished activation record (stored form, ``response.statusCode``)."""
    conn.execute(
        'INSERT OR REPLACE INTO activations (id, namespace, name, path, start, "end", status, doc) '
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            doc["activationId"],
            doc["namespace"],
            doc["name"],
            path,
            doc["start"],
            doc.get("end", 0),
            doc["response"]["statusCode"],
            _dumps(doc),
        ),
    )


def finish_activation(conn: sqlite3.Connection, doc: dict, path: str) -> None:
    """Store the record and drop its pending row, atomically."""
    put_activation(conn, doc, path)
    conn.execute("DELETE FROM pending WHERE id = ?", (doc["activationId"],))


def get_activation(conn: sqlite3.Connection, namespace: str, activation_id: str) -> dict | None:
    """The stored record of ``activation_id`` in ``namespace``, or None."""
    row = conn.execute(
        "SELECT doc FROM activations WHERE id = ? AND namespace = ?", (activation_id, namespace)
    ).fetchone()
    return json.loads(row["doc"]) if row else None


def _activation_filter(
    namespace: str, name: str | None, since: int | None, upto: int | None
) -> tuple[str, list[Any]]:
    sql = " FROM activations WHERE namespace = ?"
    args: list[Any] = [namespace]
    if name:
        column = "path" if "/" in name else "name"
        sql += f" AND {column} = ?"
        args.append(name)
    if since is not None:
        sql += " AND start >= ?"
        args.append(since)
    if upto is not None:
        sql += " AND start <= ?"
        args.append(upto)
    return sql, args


def list_activations(
    conn: sqlite3.Connection,
    namespace: str,
    name: str | None = None,
    since: int | None = None,
    upto: int | None = None,
    limit: int = 30,
    skip: int = 0,
    max_bytes: int = 0,
) -> list[dict]:
    """Stored records, newest start first, filtered by action name and start time.

    ``max_bytes`` (0: no bound) stops the list before the stored records it holds would
    pass that many bytes (the first record is always included), without reading the rest.
    """
    where, args = _activation_filter(namespace, name, since, upto)
    rows = conn.execute(
        "SELECT doc" + where + " ORDER BY start DESC, rowid DESC LIMIT ? OFFSET ?",
        [*args, limit, skip],
    )
    docs, total = [], 0
    for row in rows:
        total += len(row["doc"])
        if max_bytes and docs and total > max_bytes:
            break
        docs.append(json.loads(row["doc"]))
    return docs


def prune_activations(conn: sqlite3.Connection, before: int | None, keep: int) -> int:
    """Delete records that started before ``before`` (ms; None: any age) and all but the
    newest ``keep`` of each namespace (0: any number); return how many went."""
    removed = 0
    if before is not None:
        removed += conn.execute("DELETE FROM activations WHERE start < ?", (before,)).rowcount
    if keep:
        crowded = conn.execute(
            "SELECT namespace FROM activations GROUP BY namespace HAVING count(*) > ?", (keep,)
        ).fetchall()
        for (namespace,) in crowded:
            removed += conn.execute(
                "DELETE FROM activations WHERE rowid IN (SELECT rowid FROM activations "
                "WHERE namespace = ? ORDER BY start DESC, rowid DESC LIMIT -1 OFFSET ?)",
                (namespace, keep),
            ).rowcount
    return removed


def count_activations(
    conn: sqlite3.Connection,
    namespace: str,
    name: str | None = None,
    since: int | None = None,
    upto: int | None = None,
) -> int:
    """How many records :func:`list_activations` would match without limit."""
    where, args = _activation_filter(namespace, name, since, upto)
    return conn.execute("SELECT count(*)" + where, args).fetchone()[0]


# -- pending ----------------------------------------------------------------------------


def add_pending(
    conn: sqlite3.Connection, activation_id: str, job: dict, now: int, started: bool = False
) -> None:
    """Record an accepted activation before the client hears about it."""
    conn.execute(
        "INSERT INTO pending (id, accepted, started, job) VALUES (?, ?, ?, ?)",
        (activation_id, now, int(started), _dumps(job)),
    )


def mark_started(conn: sqlite3.Connection, activation_id: str) -> None:
    """Note that ``activation_id`` took a container slot (it will not be re-run)."""
    conn.execute("UPDATE pending SET started = 1 WHERE id = ?", (activation_id,))


def drop_pending(conn: sqlite3.Connection, activation_id: str) -> None:
    """Forget a pending activation that produced no record."""
    conn.execute("DELETE FROM pending WHERE id = ?", (activation_id,))


def list_pending(conn: sqlite3.Connection) -> list[tuple[str, bool, int, dict]]:
    """Every pending row as ``(id, started, accepted_ms, job)``, oldest first."""
    rows = conn.execute("SELECT id, started, accepted, job FROM pending ORDER BY accepted")
    return [(r["id"], bool(r["started"]), r["accepted"], json.loads(r["job"])) for r in rows]


# -- alarms -----------------------------------------------------------------------------


def put_alarm(
    conn: sqlite3.Connection, namespace: str, trigger: str, owner: str, config: dict, status: dict
) -> None:
    """Insert or replace the alarm feeding ``namespace/trigger``."""
    conn.execute(
        "INSERT OR REPLACE INTO alarms (namespace, trigger, owner, config, status) "
        "VALUES (?, ?, ?, ?, ?)",
        (namespace, trigger, owner, _dumps(config), _dumps(status)),
    )


def get_alarm(conn: sqlite3.Connection, namespace: str, trigger: str) -> dict | None:
    """``{"owner", "config", "status"}`` of the alarm on ``namespace/trigger``, or None."""
    row = conn.execute(
        "SELECT owner, config, status FROM alarms WHERE namespace = ? AND trigger = ?",
        (namespace, trigger),
    ).fetchone()
    if row is None:
        return None
    return {
        "owner": row["owner"],
        "config": json.loads(row["config"]),
        "status": json.loads(row["status"]),
    }


def delete_alarm(conn: sqlite3.Connection, namespace: str, trigger: str) -> bool:
    """Remove the alarm on ``namespace/trigger``; False if there was none."""
    cur = conn.execute(
        "DELETE FROM alarms WHERE namespace = ? AND trigger = ?", (namespace, trigger)
    )
    return cur.rowcount == 1


def count_alarms(conn: sqlite3.Connection, namespace: str) -> int:
    """How many alarms feed triggers of ``namespace``."""
    return conn.execute("SELECT count(*) FROM alarms WHERE namespace = ?", (namespace,)).fetchone()[
        0
    ]


def list_alarms(conn: sqlite3.Connection) -> list[dict]:
    """Every alarm as ``{"namespace", "trigger", "owner", "config", "status"}``."""
    rows = conn.execute("SELECT namespace, trigger, owner, config, status FROM alarms")
    return [
        {
            "namespace": r["namespace"],
            "trigger": r["trigger"],
            "owner": r["owner"],
            "config": json.loads(r["config"]),
            "status": json.loads(r["status"]),
        }
        for r in rows
    ]
