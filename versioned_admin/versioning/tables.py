"""Column types and the shadow strategy's history table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    and_,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import JSON, TypeDecorator

VERSION_SUFFIX = "_version"
# Columns of a shadow table that are not copies of the model's primary key.
SHADOW_BOOKKEEPING = ("version", "operation", "changeset_id", "reverted_from", "state", "changed")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A DateTime stored as UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        # SQLite has no time zones: store naive UTC so comparisons sort correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def state_type() -> Any:
    """The JSON type used for stored states (JSONB on PostgreSQL)."""
    return JSON().with_variant(JSONB(), "postgresql")


def id_type() -> Any:
    """BIGINT ids (INTEGER on SQLite, which only autoincrements INTEGER PRIMARY KEY)."""
    return BigInteger().with_variant(Integer(), "sqlite")


def shadow_table(table: Table, pk_cols: list[Column[Any]], changesets: Table) -> Table:
    """``<table>_version``: one row per version of a record, keyed ``(pk…, version)``."""
    name = table.name + VERSION_SUFFIX
    existing = table.metadata.tables.get(name if table.schema is None else f"{table.schema}.{name}")
    if existing is not None:
        return existing
    clash = {c.name for c in pk_cols} & set(SHADOW_BOOKKEEPING)
    if clash:
        raise ValueError(f"{table.name}: primary key columns {clash} clash with history columns")
    cols: list[Any] = [
        Column(c.name, c.type.copy(), primary_key=True, autoincrement=False) for c in pk_cols
    ]
    cols += [
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("operation", String(8), nullable=False),
        Column(
            "changeset_id",
            id_type(),
            ForeignKey(f"{changesets.name}.id", name=f"fk_{name}_changeset"),
            nullable=False,
        ),
        Column("reverted_from", Integer, nullable=True),
        Column("state", state_type(), nullable=False),
        Column("changed", state_type(), nullable=True),
        Index(f"ix_{name}_changeset_id", "changeset_id"),
        Index(f"ix_{name}_operation", "operation"),
    ]
    return Table(name, table.metadata, *cols, schema=table.schema)


# Table.info flag of history tables that can only be built once mappers are configured.
LATE = "versioned_admin.late"


def mark_late(table: Table) -> Table:
    """Flag a history table declared after mapper configuration (create_all may have run)."""
    table.info[LATE] = True
    return table


def pk_in(cols: list[Any], pks: list[tuple[Any, ...]]) -> ColumnElement[bool]:
    """``cols IN pks``: a plain IN for one column, a tuple IN for composite keys."""
    if len(cols) == 1:
        return cols[0].in_([p[0] for p in pks])
    # The first column's own IN lets SQLite use the key's index: it answers a bare row-value
    # IN with a scan of the whole table.
    return and_(cols[0].in_(list(dict.fromkeys(p[0] for p in pks))), tuple_(*cols).in_(pks))
