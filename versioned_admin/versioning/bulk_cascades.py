"""Rows a bulk DELETE removes or changes through ``ON DELETE`` foreign keys, read beforehand.

The database, not the statement, deletes (or nulls) the rows of other tables that refer to the
deleted ones: association links and children that make up versioned records' collections, or
rows of versioned models themselves. The first give their parents versions; the second are
refused, since those records would change without a version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKeyConstraint, Table, select, tuple_

from .schema import registered
from .types import UnversionedWriteError

if TYPE_CHECKING:
    from .bulk_parents import ParentChanges, StatementReader, Watched

ACTIONS = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})


def cascading(table: Table) -> list[ForeignKeyConstraint]:
    """Foreign keys of other tables whose rows a DELETE on ``table`` changes."""
    return [fk for other in table.metadata.tables.values() if other is not table
            for fk in other.foreign_key_constraints
            if fk.referred_table is table and (fk.ondelete or "").upper() in ACTIONS]


def read_cascades(reader: StatementReader, found: ParentChanges, fks: list[ForeignKeyConstraint],
                  watched: Watched) -> None:
    """Refuse cascades into versioned models; note the parents of the collections they change."""
    where = reader.stmt.whereclause
    versioned = {i.table: i for i in registered() if i.parent is None}  # a hierarchy by its base
    for fk in fks:
        child: Any = fk.table
        local = list(fk.columns)
        matched = select(*[e.column for e in fk.elements])
        if where is not None:
            matched = matched.where(where)
        cond = local[0].in_(matched) if len(local) == 1 else tuple_(*local).in_(matched)
        info = versioned.get(child)
        if info is not None:
            if reader.run(select(*info.pk_columns).where(cond).limit(1)):
                name = info.model.__name__
                raise UnversionedWriteError(
                    f"bulk DELETE on {reader.table.name} makes the database change {name} "
                    f"records (ON DELETE {fk.ondelete} on {child.name}), which would not be "
                    f"versioned: delete or change those {name} records first (through the "
                    f"session or a bulk statement on {name}), or delete these rows through "
                    f"the session"
                )
        specs = [(i, s) for i, s in watched if s.parent_cols[0].table is child]
        if not specs:
            continue
        cols = [c for _i, s in specs for c in s.parent_cols]
        for row in reader.run(select(*cols).where(cond)):
            at = 0
            for i, spec in specs:
                found.add(i, {tuple(row[at:at + len(spec.parent_cols)])})
                at += len(spec.parent_cols)
