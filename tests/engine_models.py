"""Helpers shared by the engine tests: versioned sessions, statement counting, table counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Table, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from versioned_admin.versioning import CHANGESET_TABLE, disable_versioning, enable_versioning
from versioned_admin.versioning.changesets import UserCallable


@contextmanager
def versioned_sessions(
    engine: Engine, *, user: UserCallable | None = None, **kw: Any
) -> Iterator[sessionmaker[Session]]:
    """A sessionmaker with versioning enabled; unhooked on exit."""
    maker = sessionmaker(engine, **kw)
    enable_versioning(maker, user=user)
    try:
        yield maker
    finally:
        disable_versioning(maker)


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """Collect the SQL text of every cursor execution (executemany counts once)."""
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def row_count(session: Session, table: Table) -> int:
    """Number of rows in ``table``."""
    return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def changeset_count(session: Session, metadata_table_owner: Any) -> int:
    """Number of changesets stored in the metadata of a model class."""
    table = metadata_table_owner.metadata.tables[CHANGESET_TABLE]
    return row_count(session, table)


def version_table(model: Any) -> Table:
    """The shadow table ``<table>_version`` of a shadow-strategy model."""
    table: Table = model.metadata.tables[model.__table__.name + "_version"]
    return table
