"""Enumerations stored as short strings with a CHECK constraint (portable to SQLite)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum


def str_enum(enum: type[StrEnum]) -> Enum:
    return Enum(
        enum,
        native_enum=False,
        create_constraint=True,
        length=32,
        name=enum.__name__.lower(),
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
