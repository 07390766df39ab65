"""Keys for new rows-strategy records: allocated by the engine when none is given.

A rows-strategy table's primary key is ``(id…, version_id)``, so the database cannot number
``id`` by itself. For a single integer key the engine allocates one: from a sequence on
PostgreSQL (safe with concurrent writers), from ``max(id) + 1`` on SQLite, where the flush
already holds the database's write lock when it asks (its changeset row is written first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Integer, Sequence, Table, event, func, select, text
from sqlalchemy.orm import Mapper, Session, attributes

from .schema import ROWS_BOOKKEEPING, ModelInfo, VersionedRows

ChangesetFor = Callable[[Session, ModelInfo], int]
_SEQUENCE = "versioned_admin.key_sequence"
_CHECKED = "versioned_admin.checked"


def key_column(info: ModelInfo) -> Column[Any] | None:
    """The single integer key column the engine numbers, or None (keys are the caller's)."""
    return _numbered_key(info.mapper)


def _numbered_key(mapper: Mapper[Any]) -> Column[Any] | None:
    cols = [c for c in mapper.primary_key
            if isinstance(c, Column) and c.name not in ROWS_BOOKKEEPING]
    if len(cols) != 1:
        return None
    col = cols[0]
    if col.autoincrement is False or col.default is not None or col.server_default is not None:
        return None  # the model said it gives its own keys (or has its own generator)
    if not isinstance(col.type, Integer):
        return None
    return col


def key_sequence(info: ModelInfo) -> Sequence | None:
    """The PostgreSQL sequence behind a rows-strategy model's allocated keys."""
    seq = info.table.info.get(_SEQUENCE)
    return seq if isinstance(seq, Sequence) else None


@event.listens_for(VersionedRows, "after_mapper_constructed", propagate=True)
def _declare_sequence(mapper: Mapper[Any], cls: type) -> None:
    """Declare ``<table>_<id>_seq`` beside the table, so ``create_all`` creates it."""
    table = mapper.local_table
    if not isinstance(table, Table) or _SEQUENCE in table.info or mapper.inherits is not None:
        return
    col = _numbered_key(mapper)
    if col is None:
        return
    # Sequences are a no-op in SQLite's DDL; on PostgreSQL create_all makes it.
    seq = Sequence(f"{table.name}_{col.name}_seq", metadata=table.metadata, schema=table.schema)
    table.info[_SEQUENCE] = seq


def allocate(session: Session, new: list[tuple[ModelInfo, object]],
             changeset_for: ChangesetFor) -> None:
    """Give each new rows-strategy record without a key the next free integer key."""
    by_info: dict[int, tuple[ModelInfo, list[object]]] = {}
    for info, obj in new:
        col = key_column(info)
        if col is None:
            continue
        key = info.pk_keys[0]
        if attributes.instance_dict(obj).get(key) is None:
            by_info.setdefault(id(info), (info, []))[1].append(obj)
    for info, objs in by_info.values():
        keys = _next_keys(session, info, len(objs), changeset_for)
        for obj, value in zip(objs, keys, strict=True):
            setattr(obj, info.pk_keys[0], value)


def _max_key(session: Session, info: ModelInfo) -> int:
    col = info.pk_columns[0]
    found = session.connection().execute(select(func.max(col))).scalar()
    return int(found or 0)


def _next_keys(session: Session, info: ModelInfo, count: int,
               changeset_for: ChangesetFor) -> list[int]:
    conn = session.connection()
    seq = key_sequence(info)
    if conn.dialect.name != "postgresql" or seq is None:
        # The changeset row takes SQLite's write lock first: no other writer can take the
        # same numbers before this transaction ends. Deleted records keep their rows, so
        # max() never hands out a key that has a history.
        changeset_for(session, info)
        start = _max_key(session, info) + 1
        return list(range(start, start + count))
    if not seq.info.get(_CHECKED):
        seq.create(conn, checkfirst=True)  # a table made before keys were allocated
        seq.info[_CHECKED] = True
    keys = _from_sequence(session, seq, count)
    col = info.pk_columns[0]
    taken = conn.execute(select(func.count()).where(col == func.any(keys))).scalar()
    if taken:
        # Rows were written with explicit keys past the sequence: move it beyond them, never
        # back (another transaction may hold numbers it handed out meanwhile).
        conn.execute(
            text("SELECT setval(CAST(:seq AS regclass), GREATEST(:top, nextval(CAST(:seq AS "
                 "regclass))))"),
            {"seq": _qualified(conn, seq), "top": _max_key(session, info)},
        )
        keys = _from_sequence(session, seq, count)
    return keys


def _qualified(conn: Any, seq: Sequence) -> str:
    prep = conn.dialect.identifier_preparer
    return str(prep.format_sequence(seq))


def _from_sequence(session: Session, seq: Sequence, count: int) -> list[int]:
    series = func.generate_series(1, count).table_valued("n")
    stmt = select(seq.next_value()).select_from(series)
    return sorted(int(v) for v in session.connection().execute(stmt).scalars())
