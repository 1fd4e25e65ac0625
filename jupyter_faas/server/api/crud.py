"""Create, update and delete for every entity collection, with OpenWhisk's rules.

An entity name is unique across collections within a namespace; PUT without
``overwrite=true`` on an existing name is a 409; an update keeps absent fields,
merges annotations, and bumps the patch version unless one is given.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from ..entities import check_key_values, check_version, merge_annotations, now_ms, up_patch
from ..errors import EXISTS, NOT_FOUND, WRONG_COLLECTION, Conflict, NotFound, TooLarge
from ..store import Database, queries

#: ``build(conn, old_doc_or_None) -> new doc`` run inside the write transaction.
Builder = Callable[[sqlite3.Connection, "dict | None"], dict]


def meta(old: dict | None, body: dict, namespace: str, name: str, max_annotations: int = 0) -> dict:
    """The fields every entity shares, merged for create or update.

    Args:
        old: The stored document on update, None on create.
        body: The PUT body.
        namespace: The entity's ``namespace`` field (``ns`` or ``ns/pkg``).
        name: The entity's simple name.
        max_annotations: Largest size of the merged annotations as JSON, in bytes (the
            payload limit, as for parameters); 0: no check.

    Raises:
        TooLarge: the merged annotations are over ``max_annotations``.
    """
    annotations = (
        check_key_values(body["annotations"], "annotations")
        if body.get("annotations") is not None
        else None
    )
    if body.get("version") is not None:
        version = check_version(body["version"])
    else:
        version = up_patch(old["version"]) if old else "0.0.1"
    publish = body.get("publish")
    merged = merge_annotations(
        (old or {}).get("annotations") or [], annotations, body.get("delAnnotations")
    )
    if max_annotations:
        size = len(json.dumps(merged, separators=(",", ":")).encode())
        if size > max_annotations:
            raise TooLarge(f"annotations larger than allowed: {size} > {max_annotations} bytes.")
    return {
        "namespace": namespace,
        "name": name,
        "version": version,
        "publish": bool(publish) if publish is not None else bool(old and old.get("publish")),
        "annotations": merged,
        "updated": max(now_ms(), (old or {}).get("updated", 0) + 1),
    }


def parameters(old: dict | None, body: dict) -> list[dict]:
    """Parameters of the PUT body, or the old ones when the body has none."""
    if body.get("parameters") is not None:
        return check_key_values(body["parameters"], "parameters")
    return list((old or {}).get("parameters") or [])


async def save(
    db: Database, namespace: str, name: str, collection: str, overwrite: bool, build: Builder
) -> dict:
    """Create or update an entity in one transaction and return the stored document.

    Raises:
        Conflict: the name exists (without ``overwrite``) or is in another collection.
    """

    def write(conn: sqlite3.Connection) -> dict:
        found = queries.get_entity(conn, namespace, name)
        if found is not None and found[0] != collection:
            raise Conflict(WRONG_COLLECTION)
        old = found[1] if found else None
        if old is not None and not overwrite:
            raise Conflict(EXISTS)
        doc = build(conn, old)
        queries.put_entity(conn, namespace, name, collection, doc)
        return doc

    return await db.write(write)


async def remove(
    db: Database,
    namespace: str,
    name: str,
    collection: str,
    also: Callable[[sqlite3.Connection, dict], None] | None = None,
) -> dict:
    """Delete an entity (and run ``also(conn, doc)`` in the same transaction); return it.

    Raises:
        NotFound: no such entity.
        Conflict: the name belongs to another collection.
    """

    def write(conn: sqlite3.Connection) -> dict:
        found = queries.get_entity(conn, namespace, name)
        if found is None:
            raise NotFound(NOT_FOUND)
        if found[0] != collection:
            raise Conflict(WRONG_COLLECTION)
        if also is not None:
            also(conn, found[1])
        queries.delete_entity(conn, namespace, name)
        return found[1]

    return await db.write(write)
