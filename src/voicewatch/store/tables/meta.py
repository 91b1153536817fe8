"""The shared metadata of every table, and the platform scope key (see ``tables``)."""

from __future__ import annotations

from sqlalchemy import MetaData, String

#: The scope key of platform-wide rows (never NULL, see module docstring).
PLATFORM = ""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = String(128)
