"""The function server's state in one embedded SQLite database.

``schema`` holds the table definitions and version, ``db`` the connection,
transaction and thread handling, ``queries`` the statements.
"""

from . import queries
from .db import Database, connect, transaction
from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Database", "connect", "queries", "transaction"]
