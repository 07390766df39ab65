"""The map strategy: a versioned key/value mapping whose unchanged values are shared.

In the shape of SQLAlchemy's ``versioned_map`` recipe: each value row is immutable and
remembers the parent version it originated in; each parent version lists its values in an
entries table, so a new version re-uses the rows of every key that did not change.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    select,
    tuple_,
)
from sqlalchemy.orm import Mapper, Session, attributes, object_session
from sqlalchemy.types import JSON

from .codec import encode

if TYPE_CHECKING:
    from .schema import ModelInfo
    from .types import Changeset

_CACHE = "_versioned_admin_map_"
SAVED = "versioned_admin.maps_saved"
DELETED = "deleted"  # kind of a tombstone row: the key was removed in that version
Typed = tuple[str, Any]


@dataclass(frozen=True)
class MapSpec:
    """The two tables behind one versioned map attribute."""

    name: str
    values: Table
    entries: Table
    parent_cols: tuple[str, ...]  # the parent's primary key, as named in both tables


@dataclass(frozen=True)
class MapValue:
    """One value a key was given: which version set it, and the changeset (who/when)."""

    key: str
    value: Any
    version: int
    changeset: Changeset
    deleted: bool = False


def typed(value: Any) -> Typed:
    """The (kind, stored value) of a map value; raises TypeError for unsupported types."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, (dict, list, tuple)):
        return ("json", encode(value))
    raise TypeError(f"versioned map values are str, int, float, bool, None or JSON: {value!r}")


_COLUMN = {"str": "str_value", "int": "int_value", "float": "float_value", "bool": "bool_value",
           "json": "json_value"}


def _from_row(row: Any) -> Typed:
    kind = row.kind
    column = _COLUMN.get(kind)
    value = getattr(row, column) if column else None
    if kind == "bool" and value is not None:
        value = bool(value)
    return (kind, value)


class TrackedMap(dict[str, Any]):
    """The dict a map attribute reads as; changing it marks its record for a new version."""

    def __init__(self, owner: object, base: dict[str, Typed]) -> None:
        super().__init__({k: v for k, (kind, v) in base.items()})
        self._owner = weakref.ref(owner)
        self._base = base

    def _touch(self) -> None:
        owner = self._owner()
        if owner is not None:
            attributes.flag_dirty(owner)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"versioned map keys are strings: {key!r}")
        typed(value)
        super().__setitem__(key, value)
        self._touch()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._touch()

    def update(self, *args: Any, **kw: Any) -> None:
        """Set several keys."""
        for key, value in dict(*args, **kw).items():
            self[key] = value

    def clear(self) -> None:
        """Remove every key."""
        super().clear()
        self._touch()

    def pop(self, key: str, *default: Any) -> Any:
        """Remove a key and return its value."""
        value = super().pop(key, *default)
        self._touch()
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last key and value."""
        item = super().popitem()
        self._touch()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Set a key if missing; return its value."""
        if key not in self:
            self[key] = default
        return self[key]

    def replace(self, data: Mapping[str, Any]) -> None:
        """Make the map hold exactly ``data``."""
        for key in list(self):
            if key not in data:
                super().__delitem__(key)
        self.update(data)
        self._touch()

    def wanted(self) -> dict[str, Typed]:
        """The typed contents to store."""
        return {k: typed(v) for k, v in self.items()}

    def changed(self) -> bool:
        """True if the contents differ from what is stored."""
        return self.wanted() != self._base

    def saved(self) -> None:
        """Take the current contents as stored."""
        self._base = self.wanted()


class VersionedMap:
    """Declare a versioned key/value map on a ``Versioned`` model: ``data = VersionedMap()``."""

    name = "data"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        found = obj.__dict__.get(_CACHE + self.name)
        if found is None:
            found = TrackedMap(obj, _load_current(obj, self.name))
            obj.__dict__[_CACHE + self.name] = found
        return found

    def __set__(self, obj: object, value: Mapping[str, Any]) -> None:
        self.__get__(obj).replace(value)


def tracked(obj: object, name: str) -> TrackedMap | None:
    """The map attribute's loaded dict, if it was read or written."""
    found = obj.__dict__.get(_CACHE + name)
    return found if isinstance(found, TrackedMap) else None


def forget(obj: object) -> None:
    """Drop loaded maps (after a rollback they may hold unsaved contents as saved)."""
    for key in [k for k in obj.__dict__ if k.startswith(_CACHE)]:
        del obj.__dict__[key]


def declare_maps(cls: type, mapper: Mapper[Any], table: Table, changesets: Table,
                 pk_cols: list[Column[Any]]) -> dict[str, MapSpec]:
    """Build the tables of every ``VersionedMap`` declared on a versioned model."""
    found: dict[str, MapSpec] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            if isinstance(attr, VersionedMap):
                found[name] = _tables(table, name, changesets, pk_cols)
    return found


def _tables(table: Table, name: str, changesets: Table, pk_cols: list[Column[Any]]) -> MapSpec:
    base = f"{table.name}_{name}"
    parent = tuple(f"parent_{c.name}" for c in pk_cols)
    md = table.metadata

    def pk_copies(primary: bool) -> list[Column[Any]]:
        return [Column(n, c.type.copy(), primary_key=primary, autoincrement=False, nullable=False)
                for n, c in zip(parent, pk_cols, strict=True)]

    values = md.tables.get(f"{base}_value") if table.schema is None else None
    if values is None:
        values = Table(
            f"{base}_value", md,
            Column("value_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                   autoincrement=True),
            *pk_copies(False),
            Column("key", String(255), nullable=False),
            Column("version", Integer, nullable=False),  # the parent version it originated in
            Column("changeset_id", changesets.c.id.type.copy(),
                   ForeignKey(f"{changesets.name}.id"), nullable=False),
            Column("kind", String(8), nullable=False),
            Column("str_value", Text), Column("int_value", BigInteger),
            Column("float_value", Float(53)), Column("bool_value", Boolean),
            Column("json_value", JSON),
            Index(f"ix_{base}_value_key", *parent, "key", "version"),
            schema=table.schema,
        )
    entries = md.tables.get(f"{base}_entry") if table.schema is None else None
    if entries is None:
        entries = Table(
            f"{base}_entry", md, *pk_copies(True),
            Column("version", Integer, primary_key=True, autoincrement=False),
            Column("value_id", values.c.value_id.type.copy(),
                   ForeignKey(values.c.value_id), primary_key=True, autoincrement=False),
            schema=table.schema,
        )
    return MapSpec(name, values, entries, parent)


def _spec(info: ModelInfo, name: str | None) -> MapSpec:
    from .types import VersioningError

    if name is None:
        if len(info.maps) != 1:
            raise VersioningError(f"{info.model.__name__}: name the map (one of {list(info.maps)})")
        return next(iter(info.maps.values()))
    if name not in info.maps:
        raise VersioningError(f"{info.model.__name__} has no versioned map {name!r}")
    return info.maps[name]


def _read(session: Session, spec: MapSpec, pairs: list[tuple[Any, ...]]
          ) -> dict[tuple[Any, ...], dict[str, tuple[int, Typed]]]:
    """(pk…, version) -> key -> (value_id, typed value), in one SELECT."""
    found: dict[tuple[Any, ...], dict[str, tuple[int, Typed]]] = {p: {} for p in pairs}
    if not pairs:
        return found
    e, v = spec.entries, spec.values
    cols = [e.c[n] for n in spec.parent_cols] + [e.c.version]
    stmt = select(*cols, v).join(v, v.c.value_id == e.c.value_id).where(tuple_(*cols).in_(pairs))
    for row in session.connection().execute(stmt):
        key = tuple(row[: len(cols)])
        found[key][row.key] = (int(row.value_id), _from_row(row))
    return found


def _load_current(obj: object, name: str) -> dict[str, Typed]:
    from .schema import require_info
    from .writer import latest_numbers, pk_of

    state = attributes.instance_state(obj)
    session = object_session(obj)
    if state.key is None or session is None:
        return {}
    info = require_info(obj)
    pk = pk_of(info, obj)
    number = latest_numbers(session, info, [pk]).get(pk)
    if number is None:
        return {}
    got = _read(session, info.maps[name], [(*pk, number)])[(*pk, number)]
    return {k: t for k, (_id, t) in got.items()}


def changed_maps(info: ModelInfo, obj: object) -> list[str]:
    """Names of the object's maps whose contents changed since they were loaded."""
    return [n for n in info.maps if (m := tracked(obj, n)) is not None and m.changed()]


def write_maps(session: Session, info: ModelInfo, written: Iterable[tuple[tuple[Any, ...],
               object | None]], cs_id: int) -> None:
    """Give the versions just written their map entries; new rows only for changed keys."""
    from .writer import latest_numbers

    written = list(written)
    latest = latest_numbers(session, info, [pk for pk, _o in written])
    conn = session.connection()
    for spec in info.maps.values():
        copies: list[dict[str, Any]] = []
        fresh: list[tuple[tuple[Any, ...], int, TrackedMap]] = []
        for pk, obj in written:
            number = latest[pk]
            found = tracked(obj, spec.name) if obj is not None else None
            if found is not None and (found.changed() or number == 1):
                fresh.append((pk, number, found))
            elif number > 1:
                copies.append({"pk": pk, "number": number})
        if copies:
            _copy(session, spec, copies)
        if not fresh:
            continue
        base = _read(session, spec, [(*pk, n - 1) for pk, n, _m in fresh])
        new_rows: list[dict[str, Any]] = []
        owners: list[tuple[tuple[Any, ...], int, str]] = []
        entries: list[dict[str, Any]] = []
        for pk, number, found in fresh:
            parent = dict(zip(spec.parent_cols, pk, strict=True))
            before = base[(*pk, number - 1)]
            wanted = found.wanted()
            for key, value in wanted.items():
                old = before.get(key)
                if old is not None and old[1] == value:
                    entries.append({**parent, "version": number, "value_id": old[0]})
                    continue
                new_rows.append(_value_row(parent, key, number, cs_id, value))
                owners.append((pk, number, key))
            for key in before.keys() - wanted.keys():
                new_rows.append(_value_row(parent, key, number, cs_id, (DELETED, None)))
                owners.append((pk, number, ""))  # tombstones belong to no version's entries
            found.saved()
            if obj_ := found._owner():
                session.info.setdefault(SAVED, []).append(obj_)
        if new_rows:
            ids = conn.execute(
                spec.values.insert().returning(spec.values.c.value_id,
                                               sort_by_parameter_order=True),
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
    for kind, column in _COLUMN.items():
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


def map_at(session: Session, model: type, pk: Any, number: int, *,
           name: str | None = None) -> dict[str, Any]:
    """The map as it was at the record's version ``number`` (one query)."""
    from .history import normalize_pk
    from .schema import require_info

    info = require_info(model)
    key = normalize_pk(info, pk)
    got = _read(session, _spec(info, name), [(*key, number)])[(*key, number)]
    return {k: v for k, (_id, (_kind, v)) in sorted(got.items())}


def key_history(session: Session, model: type, pk: Any, key: str, *,
                name: str | None = None) -> list[MapValue]:
    """Every value ``key`` was given, oldest first, with its version and changeset (one query)."""
    from .history import _changeset, _cs_columns, normalize_pk
    from .schema import require_info

    info = require_info(model)
    spec = _spec(info, name)
    ident = normalize_pk(info, pk)
    v, cs = spec.values, info.changesets
    rows = session.execute(
        select(v, *_cs_columns(info))
        .join(cs, cs.c.id == v.c.changeset_id)
        .where(and_(*[v.c[n] == x for n, x in zip(spec.parent_cols, ident, strict=True)]),
               v.c.key == key)
        .order_by(v.c.version)
    ).all()
    return [
        MapValue(key=key, value=_from_row(r)[1], version=int(r.version),
                 changeset=_changeset(r), deleted=r.kind == DELETED)
        for r in rows
    ]
