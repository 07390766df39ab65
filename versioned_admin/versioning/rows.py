"""The rows strategy: an UPDATE becomes an INSERT of the record's next row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, attributes, make_transient
from sqlalchemy.orm.interfaces import ONETOMANY

from .schema import ModelInfo, pk_in
from .types import Operation
from .writer import latest_numbers, load_expired, pk_of

ChangesetFor = Callable[[Session, ModelInfo], int]


@dataclass
class RowsWork:
    """Rows-strategy instances a flush touches."""

    inserts: list[tuple[ModelInfo, object]] = field(default_factory=list)
    updates: list[tuple[ModelInfo, object, list[str]]] = field(default_factory=list)
    deletes: list[tuple[ModelInfo, object]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.deletes)


def _load_all(info: ModelInfo, obj: object) -> None:
    # make_transient drops unloaded attributes, so load them while the row is reachable.
    for prop in info.mapper.column_attrs:
        getattr(obj, prop.key)


def _retire(session: Session, info: ModelInfo, pks: list[tuple[Any, ...]]) -> None:
    """Mark every row of these records as no longer current (one statement)."""
    if pks:
        table = info.table
        session.connection().execute(
            table.update()
            .where(pk_in(info.pk_columns, pks), table.c.is_current_version.is_(True))
            .values(is_current_version=False)
        )


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
        new = [o for i, o in work.inserts if i is info]
        taken = _next_version(session, info, new)
        for obj in new:
            last = taken.get(pk_of(info, obj), 0)
            obj.version_id = last + 1  # type: ignore[attr-defined]
            obj.is_current_version = True  # type: ignore[attr-defined]
            obj.operation = Operation.INSERT.value  # type: ignore[attr-defined]
            obj.changeset_id = cs_id  # type: ignore[attr-defined]
            obj.reverted_from = reverts.get(attributes.instance_state(obj))  # type: ignore[attr-defined]
        updated = [(o, ch) for i, o, ch in work.updates if i is info]
        deleted = [o for i, o in work.deletes if i is info]
        touched = [o for o, _ch in updated] + deleted
        load_expired(session, info, touched, frozenset(p.key for p in info.mapper.column_attrs))
        for obj in touched:
            _load_all(info, obj)
        retired = [pk_of(info, o) for o, _ in updated] + [pk_of(info, o) for o in deleted]
        _retire(session, info, retired)
        for obj, _changed in updated:
            _new_row(session, info, obj, Operation.UPDATE, cs_id, reverts)
        for obj in deleted:
            _new_row(session, info, obj, Operation.DELETE, cs_id, reverts)


def _new_row(
    session: Session,
    info: ModelInfo,
    obj: Any,
    operation: Operation,
    cs_id: int,
    reverts: dict[Any, int],
) -> None:
    reverted_from = reverts.get(attributes.instance_state(obj))
    referrers = _referrers(info, obj) if operation is Operation.UPDATE else []
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
