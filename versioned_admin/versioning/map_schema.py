"""Versioned maps in the schema: their two tables and the mapper attribute they read as.

Each map ``data`` of a model becomes a mapper property named ``data`` whose loaded value (a
``TrackedMap``) lives in the instance dict under that name, as a column's value does. So
SQLAlchemy's own expiry drops it exactly when it drops columns (``commit``, ``rollback``,
``expire``, ``expire_all``, ``refresh``, ``expire(obj, ["data"])``) and the next read loads the
stored entries again; ``merge`` and ``get_history`` know it too. Loading lives in ``maps``
(``VersionedMap``), which needs the registry; this module must not, as the registry builds
these tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    event,
    false,
    select,
)
from sqlalchemy.orm import Mapper, PropComparator, QueryableAttribute, attributes
from sqlalchemy.orm.attributes import History
from sqlalchemy.orm.base import PassiveFlag
from sqlalchemy.orm.descriptor_props import DescriptorProperty
from sqlalchemy.orm.state import InstanceState
from sqlalchemy.types import JSON

from .codec import encode
from .types import VersioningError
from .values_check import check_map, check_map_key, check_map_value

DELETED = "deleted"  # kind of a tombstone row: the key was removed in that version
Typed = tuple[str, Any]
VALUE_COLUMNS = MappingProxyType({"str": "str_value", "int": "int_value", "float": "float_value",
                                  "bool": "bool_value", "json": "json_value"})


def typed(value: Any) -> Typed:
    """The (kind, stored value) of a map value; raises TypeError for unsupported types."""
    check_map_value(value)
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


def value_of(row: Any) -> Typed:
    """The (kind, value) a stored value row holds."""
    kind = row.kind
    column = VALUE_COLUMNS.get(kind)
    value = getattr(row, column) if column else None
    if kind == "bool" and value is not None:
        value = bool(value)
    return (kind, value)


@dataclass(frozen=True)
class MapSpec:
    """The two tables behind one versioned map attribute."""

    name: str
    values: Table
    entries: Table
    parent_cols: tuple[str, ...]  # the parent's primary key, as named in both tables


class MapAttribute:
    """What declares a versioned map on a model; ``maps.VersionedMap`` loads and sets it."""

    name = "data"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class TrackedMap(dict[str, Any]):
    """The dict a map attribute reads as; changing it marks its record for a new version.

    ``base`` is what the database held when it was loaded (or last written by this session):
    a flush writes only the keys that differ from it, on top of the latest stored version.
    """

    def __init__(self, state: InstanceState[Any], name: str, base: dict[str, Typed]) -> None:
        super().__init__({k: v for k, (_kind, v) in base.items()})
        self._state = state
        self._name = name
        self.base = base

    @classmethod
    def restored(cls, state: InstanceState[Any], name: str, contents: dict[str, Any],
                 base: dict[str, Typed]) -> TrackedMap:
        """Rebuild an unpickled (or merged) map without marking its record changed."""
        found = cls(state, name, base)
        dict.clear(found)
        dict.update(found, contents)
        return found

    def __reduce__(self) -> Any:
        # The default would replay __setitem__ before the record is rebuilt.
        return (TrackedMap.restored, (self._state, self._name, dict(self), self.base))

    def _live(self) -> None:
        """Refuse a change to a map its record no longer holds: it would be lost silently."""
        if self._state.dict.get(self._name) is not self:
            raise VersioningError(
                f"this {self._name!r} map was expired (commit, rollback, expire or refresh) "
                f"and its changes would be lost: read it from the record again")

    def _touch(self) -> None:
        owner = self._state.obj()
        if owner is not None:
            attributes.flag_dirty(owner)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"versioned map keys are strings: {key!r}")
        check_map_key(key)
        typed(value)
        self._live()
        super().__setitem__(key, value)
        self._touch()

    def __delitem__(self, key: str) -> None:
        self._live()
        super().__delitem__(key)
        self._touch()

    def __ior__(self, other: Any) -> TrackedMap:  # type: ignore[override,misc]
        self.update(other)
        return self

    def update(self, *args: Any, **kw: Any) -> None:
        """Set several keys."""
        for key, value in dict(*args, **kw).items():
            self[key] = value

    def clear(self) -> None:
        """Remove every key."""
        self._live()
        super().clear()
        self._touch()

    def pop(self, key: str, *default: Any) -> Any:
        """Remove a key and return its value."""
        self._live()
        value = super().pop(key, *default)
        self._touch()
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last key and value."""
        self._live()
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
        data = dict(data)  # it may be this very map
        check_map(data)  # all or nothing: a refused value must not leave it half changed
        self._live()
        for key in list(self):
            if key not in data:
                super().__delitem__(key)
        self.update(data)
        self._touch()

    def wanted(self) -> dict[str, Typed]:
        """The typed contents to store."""
        return {k: typed(v) for k, v in self.items()}

    def changes(self) -> tuple[dict[str, Typed], set[str]]:
        """Keys set to a new value and keys removed, compared with ``base``."""
        wanted = self.wanted()
        base = self.base
        return ({k: t for k, t in wanted.items() if base.get(k) != t},
                set(base.keys() - wanted.keys()))

    def changed(self) -> bool:
        """True if the contents differ from ``base``."""
        return self.wanted() != self.base

    def saved(self) -> None:
        """Take the contents as stored; keys others changed meanwhile stay as read, like columns."""
        self.base = self.wanted()


def tracked(obj: object, name: str) -> TrackedMap | None:
    """The map attribute's loaded dict, if it was read or written since it last expired."""
    found = attributes.instance_dict(obj).get(name)
    return found if isinstance(found, TrackedMap) else None


class MapProperty(DescriptorProperty[dict[str, Any]]):
    """The mapper property of a versioned map: expired, refreshed and merged like a column."""

    def __init__(self, descriptor: MapAttribute) -> None:
        super().__init__()
        self.descriptor = descriptor

    def _comparator_factory(self, mapper: Mapper[Any]) -> Any:
        # Asked for only when the class attribute is used in SQL: a map has no expression.
        return PropComparator(self, mapper)

    def get_history(self, state: InstanceState[Any], dict_: dict[str, Any],
                    passive: PassiveFlag = PassiveFlag.PASSIVE_OFF) -> History:
        """The map before and after this unit of work's changes (for is_modified, get_history)."""
        found = dict_.get(self.key)
        if not isinstance(found, TrackedMap):
            return History((), (), ())
        if found.changed():
            return History([dict(found)], (), [{k: v for k, (_kind, v) in found.base.items()}])
        return History((), [dict(found)], ())

    def merge(self, session: Any, source_state: InstanceState[Any], source_dict: dict[str, Any],
              dest_state: InstanceState[Any], dest_dict: dict[str, Any], load: bool,
              _recursive: Any, _resolve_conflict_map: Any) -> None:
        """Carry the keys a merged copy changed over, never its stale values of the others."""
        found = source_dict.get(self.key)
        if not isinstance(found, TrackedMap) or found is dest_dict.get(self.key):
            return
        if not load:  # merge(load=False) takes the copy as stored: contents and base alike
            dest_dict[self.key] = TrackedMap.restored(dest_state, self.key, dict(found),
                                                      dict(found.base))
            return
        sets, removed = found.changes()
        if not sets and not removed:
            return
        dest = getattr(dest_state.obj(), self.key)  # the destination's stored map, loaded
        for key in removed:
            dest.pop(key, None)
        for key in sets:
            dest[key] = found[key]

    def setup(self, context: Any, query_entity: Any, path: Any, adapter: Any,
              **kwargs: Any) -> None:
        """On ``refresh(obj, [name])`` select the primary key: the map itself has no column."""
        # SQLAlchemy refuses a refresh whose SELECT would be empty; the map reloads on access.
        columns = kwargs.get("column_collection")
        if not kwargs.get("only_load_props") or columns is None:
            return
        for col in self.parent.primary_key:
            col = adapter.columns[col] if adapter else col
            if not any(c is col for c in columns):
                columns.append(col)


def declare_maps(cls: type, mapper: Mapper[Any], table: Table, changesets: Table,
                 pk_cols: list[Column[Any]]) -> dict[str, MapSpec]:
    """Build the tables and mapper attribute of every versioned map declared on a model."""
    found: dict[str, tuple[MapAttribute, MapSpec]] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in vars(klass).items():
            declared = attr if isinstance(attr, MapAttribute) else _mapped(attr)
            if declared is not None:
                found[name] = (declared, _tables(table, name, changesets, pk_cols))
    # A subclass inherits its base's map attributes (and their listeners) from its mapper.
    added = tuple(n for n in found if not mapper.has_property(n))
    for name in added:
        if name in vars(cls):
            delattr(cls, name)  # the mapper property takes its place (and proxies to it)
        mapper.add_property(name, MapProperty(found[name][0]))
    if added:
        event.listen(cls, "refresh", _dropper(added), propagate=True)
        event.listen(mapper, "before_update", _locker(added, table, pk_cols), propagate=True)
    return {name: spec for name, (_attr, spec) in found.items()}


def _mapped(attr: Any) -> MapAttribute | None:
    """The map behind a mapped base class's attribute (its mapper property proxies to it)."""
    if not isinstance(attr, QueryableAttribute):
        return None
    prop = getattr(attr, "original_property", None)
    return prop.descriptor if isinstance(prop, MapProperty) else None


def _dropper(names: tuple[str, ...]) -> Any:
    def refreshed(target: object, context: Any, attrs: Any) -> None:
        # A load with populate_existing overwrites columns without expiring them first.
        data = attributes.instance_dict(target)
        for name in names:
            if attrs is None or name in attrs:
                data.pop(name, None)

    return refreshed


def _locker(names: tuple[str, ...], table: Table, pk_cols: list[Column[Any]]) -> Any:
    def before_update(mapper: Mapper[Any], connection: Connection, target: object) -> None:
        if any((m := tracked(target, n)) is not None and m.changed() for n in names):
            lock_row(connection, table, pk_cols, _identity(mapper, target, pk_cols))

    return before_update


def _identity(mapper: Mapper[Any], target: object, pk_cols: list[Column[Any]]) -> list[Any]:
    key = attributes.instance_state(target).key
    assert key is not None  # before_update: the record is persistent
    values = dict(zip(mapper.primary_key, key[1], strict=True))
    return [values[c] for c in pk_cols]


def lock_row(connection: Connection, table: Table, pk_cols: list[Column[Any]],
             ident: list[Any]) -> None:
    """Lock a record's live row until the transaction ends, as its UPDATE would."""
    # A flush that changes only a map issues no UPDATE, so nothing would hold the row while
    # the version is numbered and the map written on top of the latest one: two writers
    # would both build on the same version (or both pass expect_version).
    if connection.dialect.name == "sqlite":
        # No row locks: a write that matches nothing still takes the database's write lock.
        connection.execute(table.update().where(false()).values({c.name: c for c in pk_cols}))
        return
    cond = and_(*[c == v for c, v in zip(pk_cols, ident, strict=True)])
    connection.execute(select(*pk_cols).where(cond).with_for_update())


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
