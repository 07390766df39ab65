"""The rows strategy: an UPDATE becomes an INSERT of the record's next row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import (
    Session,
    SessionTransaction,
    attributes,
    make_transient,
    make_transient_to_detached,
)
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlalchemy.orm.interfaces import MANYTOONE, ONETOMANY

from .changesets import innermost_transaction
from .schema import ModelInfo, pk_in
from .types import Operation, StaleVersionError
from .writer import latest_numbers, load_expired, pk_of

ChangesetFor = Callable[[Session, ModelInfo], int]
# (transaction of the flush, instance, the row key it had before the flush moved it)
_MOVED = "versioned_admin.rows_moved"
Moved = tuple[SessionTransaction | None, object, int]


@dataclass
class RowsWork:
    """Rows-strategy instances a flush touches."""

    inserts: list[tuple[ModelInfo, object]] = field(default_factory=list)
    updates: list[tuple[ModelInfo, object, list[str]]] = field(default_factory=list)
    deletes: list[tuple[ModelInfo, object]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.deletes)


def relation_changes(info: ModelInfo, obj: object) -> list[str]:
    """Recorded foreign-key columns a many-to-one assignment will change in this flush.

    The flush copies the related object's key into the column only after before_flush, where
    the rows strategy must already have decided to write the record's next row.
    """
    state = attributes.instance_state(obj)
    changed: list[str] = []
    for rel in info.mapper.relationships:
        if rel.direction is not MANYTOONE or rel.viewonly:
            continue
        hist = state.get_history(rel.key, PASSIVE_NO_INITIALIZE)
        if not hist.added and not hist.deleted:
            continue
        target = hist.added[0] if hist.added else None
        for local, remote in rel.local_remote_pairs or ():
            prop = info.mapper.get_property_by_column(local)
            if prop.key not in info.field_keys or prop.key in changed:
                continue
            if target is None:
                new = None
            else:
                tstate = attributes.instance_state(target)
                if tstate.key is None:  # pending: its key is known only once it is inserted
                    changed.append(prop.key)
                    continue
                new = tstate.mapper.get_property_by_column(remote).class_attribute.__get__(
                    target, type(target))
            if state.dict.get(prop.key) != new:
                changed.append(prop.key)
    return changed


def _load_all(info: ModelInfo, obj: object) -> None:
    # make_transient drops unloaded attributes, so load them while the row is reachable.
    for prop in info.mapper.column_attrs:
        getattr(obj, prop.key)


def _retire(session: Session, info: ModelInfo, objs: list[object]) -> None:
    """Mark the rows these instances were loaded from as no longer current (one statement);
    refuse if one of them is not current any more (someone wrote the record's next row)."""
    if not objs:
        return
    table = info.table
    cols = [*info.pk_columns, table.c.version_id]
    rows = [(*pk_of(info, o), int(o.version_id)) for o in objs]  # type: ignore[attr-defined]
    result = session.connection().execute(
        table.update()
        .where(pk_in(cols, rows), table.c.is_current_version.is_(True))
        .values(is_current_version=False)
    )
    if result.rowcount != len(rows):
        _refuse_stale(session, info, rows)


def _refuse_stale(session: Session, info: ModelInfo, rows: list[tuple[Any, ...]]) -> None:
    """Raise StaleVersionError for the rows that are no longer their record's newest."""
    latest = latest_numbers(session, info, [r[:-1] for r in rows])
    stale = [(info.model, r[:-1], r[-1], latest.get(r[:-1], 0)) for r in rows
             if latest.get(r[:-1], 0) != r[-1]]
    _model, pk, mine, theirs = stale[0] if stale else (info.model, rows[0][:-1], 0, 0)
    raise StaleVersionError(
        f"{info.model.__name__} {pk!r} was changed by someone else since it was loaded "
        f"(row {mine}, now {theirs}): load it again and repeat the change", stale)


def _referrers(info: ModelInfo, obj: object) -> list[tuple[object, str]]:
    """(parent, attribute) pairs whose many-to-one points at this row, to follow it."""
    found: list[tuple[object, str]] = []
    for rel in info.mapper.relationships:
        if rel.direction is not ONETOMANY or not rel._reverse_property:
            continue
        if "version_id" not in {c.name for c in rel.local_columns}:
            continue  # it refers to the record's key, which every row of the record shares
        reverse = next(iter(rel._reverse_property))
        value = getattr(obj, rel.key)
        parents = value if rel.uselist else [value] if value is not None else []
        found.extend((parent, reverse.key) for parent in list(parents))
    return found


def _next_version(
    session: Session, info: ModelInfo, objs: list[object]
) -> dict[tuple[Any, ...], int]:
    """Highest version_id already stored for records given explicit ids."""
    pks = [pk_of(info, o) for o in objs]
    pks = [p for p in pks if all(v is not None for v in p)]
    return latest_numbers(session, info, pks)


def apply(
    session: Session,
    work: RowsWork,
    changeset_for: ChangesetFor,
    reverts: dict[Any, int],
) -> None:
    """Rewrite this flush's rows-strategy changes as INSERTs of new rows."""
    by_info: dict[int, ModelInfo] = {}
    for info, *_ in work.inserts + work.updates + work.deletes:
        by_info[id(info)] = info
    for info in by_info.values():
        cs_id = changeset_for(session, info)
        updated = [(o, ch) for i, o, ch in work.updates if i is info]
        deleted = [o for i, o in work.deletes if i is info]
        touched = [o for o, _ch in updated] + deleted
        load_expired(session, info, touched, frozenset(p.key for p in info.mapper.column_attrs))
        for obj in touched:
            _load_all(info, obj)
        _retire(session, info, touched)
        written: dict[tuple[Any, ...], int] = {}
        for obj, _changed in updated:
            _new_row(session, info, obj, Operation.UPDATE, cs_id, reverts)
            written[pk_of(info, obj)] = obj.version_id  # type: ignore[attr-defined]
        for obj in deleted:
            _new_row(session, info, obj, Operation.DELETE, cs_id, reverts)
            written[pk_of(info, obj)] = obj.version_id  # type: ignore[attr-defined]
        new = [o for i, o in work.inserts if i is info]
        taken = _next_version(session, info, new)
        for obj in new:
            pk = pk_of(info, obj)
            # A record deleted in this same flush and added again continues after the delete.
            last = max(taken.get(pk, 0), written.get(pk, 0))
            obj.version_id = last + 1  # type: ignore[attr-defined]
            obj.is_current_version = True  # type: ignore[attr-defined]
            obj.operation = Operation.INSERT.value  # type: ignore[attr-defined]
            obj.changeset_id = cs_id  # type: ignore[attr-defined]
            obj.reverted_from = reverts.get(attributes.instance_state(obj))  # type: ignore[attr-defined]


def _new_row(
    session: Session,
    info: ModelInfo,
    obj: Any,
    operation: Operation,
    cs_id: int,
    reverts: dict[Any, int],
) -> None:
    # A delete is never "reverted to" anything, even of a record a revert staged first.
    reverted_from = (None if operation is Operation.DELETE
                     else reverts.get(attributes.instance_state(obj)))
    referrers = _referrers(info, obj) if operation is Operation.UPDATE else []
    moved: list[Moved] = session.info.setdefault(_MOVED, [])
    moved.append((innermost_transaction(session), obj, obj.version_id))
    make_transient(obj)
    obj.version_id += 1
    obj.is_current_version = operation is not Operation.DELETE
    obj.operation = operation.value
    obj.changeset_id = cs_id
    obj.reverted_from = reverted_from
    session.add(obj)
    for parent, key in referrers:
        if attributes.instance_state(parent).key is None:
            continue  # pending: the flush points it at the new row like any added child
        # Re-point the parent's composite foreign key at the new row.
        session.expire(parent, [key])
        setattr(parent, key, obj)


def _within(txn: SessionTransaction | None, scope: SessionTransaction) -> bool:
    while txn is not None:
        if txn is scope:
            return True
        txn = txn.parent
    return False


def transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    """Put rows moved by a rolled-back flush back on the row the database still holds.

    The rows strategy re-adds the instance as the record's next row; a rollback expunges
    it as a new object (transient), and a later edit of it would be silently lost.
    """
    if transaction.parent is not None and not transaction.nested:
        return  # a flush's own subtransaction: its savepoint or root decides
    moved: list[Moved] | None = session.info.get(_MOVED)
    if not moved:
        return
    kept: list[Moved] = []
    first: dict[int, tuple[object, int]] = {}
    for txn, obj, number in moved:
        if not _within(txn, transaction):
            kept.append((txn, obj, number))
        elif attributes.instance_state(obj).transient:
            first.setdefault(id(obj), (obj, number))
        elif transaction.nested:
            kept.append((txn, obj, number))  # a released savepoint: its parent may roll back
    if kept:
        session.info[_MOVED] = kept
    else:
        session.info.pop(_MOVED, None)
    for obj, number in first.values():
        obj.version_id = number  # type: ignore[attr-defined]
        make_transient_to_detached(obj)
        key = attributes.instance_state(obj).key
        if key is not None and key in session.identity_map:
            continue  # the row was loaded again meanwhile: that instance stands for it
        session.add(obj)
        session.expire(obj)
