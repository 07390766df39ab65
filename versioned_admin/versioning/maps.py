"""The map strategy: a versioned key/value mapping whose unchanged values are shared.

In the shape of SQLAlchemy's ``versioned_map`` recipe: each value row is immutable and
remembers the parent version it originated in; each parent version lists its values in an
entries table, so a new version re-uses the rows of every key that did not change.

The map is an attribute of its record like a column (``map_schema``): loaded on first read,
dropped by every expiry. A flush writes only the keys this session changed, on top of the
latest stored version read under the record's row lock, so a long-lived session never writes
back a stale value of a key someone else changed meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Integer, bindparam, select
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.exc import DetachedInstanceError

from .map_history import MapValue, key_history, latest_entries, map_at, read_entries
from .map_schema import (
    DELETED,
    VALUE_COLUMNS,
    MapAttribute,
    MapSpec,
    TrackedMap,
    Typed,
    declare_maps,
    tracked,
    typed,
)
from .schema import ModelInfo, require_info
from .writer import latest_numbers, pk_of

# Re-exported: callers older than the split (and verify_maps) import them from here.
__all__ = [
    "DELETED",
    "MapSpec",
    "MapValue",
    "TrackedMap",
    "VersionedMap",
    "changed_maps",
    "declare_maps",
    "forget",
    "key_history",
    "map_at",
    "tracked",
    "typed",
    "write_maps",
]


class VersionedMap(MapAttribute):
    """Declare a versioned key/value map on a ``Versioned`` model: ``data = VersionedMap()``."""

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        data = attributes.instance_dict(obj)
        found = data.get(self.name)
        if not isinstance(found, TrackedMap):
            state = attributes.instance_state(obj)
            found = data[self.name] = TrackedMap(state, self.name, _stored(obj, self.name))
            # Loaded now: a later load of expired columns must not count it as expired too
            # (it would refresh it away, with any change made to it meanwhile).
            state.expired_attributes.discard(self.name)
        return found

    def __set__(self, obj: object, value: Mapping[str, Any]) -> None:
        self.__get__(obj).replace(value)


def _stored(obj: object, name: str) -> dict[str, Typed]:
    """What the record's latest stored version holds for map ``name``."""
    state = attributes.instance_state(obj)
    session = state.session
    if session is None:
        if state.key is not None:  # as an expired column would, rather than read as empty
            raise DetachedInstanceError(
                f"{state.class_.__name__} is not bound to a Session; its map {name!r} "
                "cannot be loaded")
        return {}
    info = require_info(obj)
    if state.key is not None:
        pk = tuple(state.key[1])
    else:
        # A pending record with a key given (a restore) continues that key's history.
        pk = pk_of(info, obj)
        if any(v is None for v in pk):
            return {}
    return latest_entries(session, info, info.maps[name], pk)


def forget(obj: object) -> None:
    """Drop the object's loaded maps, as ``session.expire(obj, [names])`` does: reads reload."""
    info = require_info(obj)
    data = attributes.instance_dict(obj)
    for name in info.maps:
        data.pop(name, None)


def changed_maps(info: ModelInfo, obj: object) -> list[str]:
    """Names of the object's maps whose contents changed since they were loaded."""
    return [n for n in info.maps if (m := tracked(obj, n)) is not None and m.changed()]


def write_maps(session: Session, info: ModelInfo, written: Iterable[tuple[tuple[Any, ...],
               object | None]], cs_id: int) -> None:
    """Give the versions just written their map entries; new rows only for changed keys."""
    written = list(written)
    latest = latest_numbers(session, info, [pk for pk, _o in written])
    # A key deleted and added again in one flush has two versions here, in order.
    left = Counter(pk for pk, _o in written)
    numbers = []
    for pk, _o in written:
        left[pk] -= 1
        numbers.append(latest[pk] - left[pk])
    for spec in info.maps.values():
        copies: list[dict[str, Any]] = []
        fresh: list[tuple[tuple[Any, ...], int, TrackedMap, bool]] = []
        for (pk, obj), number in zip(written, numbers, strict=True):
            found = tracked(obj, spec.name) if obj is not None else None
            # An insert writes a loaded map whole, changed or not: a record rolled back and
            # added again holds what it held when it was first flushed.
            inserted = found is not None and attributes.instance_state(obj).key is None
            if found is not None and (inserted or found.changed()):
                fresh.append((pk, number, found, inserted))
            elif number > 1:
                copies.append({"pk": pk, "number": number})
        if copies:
            _copy(session, spec, copies)
        if fresh:
            _write_fresh(session, spec, fresh, cs_id)


def _write_fresh(session: Session, spec: MapSpec,
                 fresh: list[tuple[tuple[Any, ...], int, TrackedMap, bool]], cs_id: int) -> None:
    """Entries of versions whose map this session changed; value rows for changed keys only."""
    # The previous version is read now, after this flush locked the rows (its UPDATE, or
    # map_schema.lock_row): the latest anyone committed, so others' keys are kept.
    prev = read_entries(session, spec, [(*pk, n - 1) for pk, n, _m, _i in fresh])
    new_rows: list[dict[str, Any]] = []
    owners: list[tuple[tuple[Any, ...], int, str]] = []
    entries: list[dict[str, Any]] = []
    for pk, number, found, inserted in fresh:
        parent = dict(zip(spec.parent_cols, pk, strict=True))
        before = prev[(*pk, number - 1)]
        if inserted:  # a new record holds exactly what it was given
            after = found.wanted()
        else:
            sets, removed = found.changes()
            after = {k: t for k, (_id, t) in before.items() if k not in removed}
            after.update(sets)
        for key, value in after.items():
            old = before.get(key)
            if old is not None and old[1] == value:
                entries.append({**parent, "version": number, "value_id": old[0]})
                continue
            new_rows.append(_value_row(parent, key, number, cs_id, value))
            owners.append((pk, number, key))
        for key in before.keys() - after.keys():
            new_rows.append(_value_row(parent, key, number, cs_id, (DELETED, None)))
            owners.append((pk, number, ""))  # tombstones belong to no version's entries
        found.saved()
    conn = session.connection()
    if new_rows:
        ids = conn.execute(
            spec.values.insert().returning(spec.values.c.value_id, sort_by_parameter_order=True),
            new_rows,
        ).scalars().all()
        for (pk, number, key), value_id in zip(owners, ids, strict=True):
            if key:
                entries.append({**dict(zip(spec.parent_cols, pk, strict=True)),
                                "version": number, "value_id": value_id})
    if entries:
        conn.execute(spec.entries.insert(), entries)


def _value_row(parent: dict[str, Any], key: str, number: int, cs_id: int,
               value: Typed) -> dict[str, Any]:
    row: dict[str, Any] = {**parent, "key": key, "version": number, "changeset_id": cs_id,
                           "kind": value[0]}
    for kind, column in VALUE_COLUMNS.items():
        row[column] = value[1] if kind == value[0] else None
    return row


def _copy(session: Session, spec: MapSpec, copies: list[dict[str, Any]]) -> None:
    """Give each version the entries of the version before it (one executemany)."""
    e = spec.entries
    params: list[Any] = [bindparam(f"p_{n}") for n in spec.parent_cols]
    number = bindparam("n", type_=Integer)
    sel = select(*params, number, e.c.value_id).where(
        *[e.c[n] == p for n, p in zip(spec.parent_cols, params, strict=True)],
        e.c.version == number - 1,
    )
    stmt = e.insert().from_select([*spec.parent_cols, "version", "value_id"], sel)
    rows = [{**{f"p_{n}": v for n, v in zip(spec.parent_cols, c["pk"], strict=True)},
             "n": c["number"]} for c in copies]
    session.connection().execute(stmt, rows)
