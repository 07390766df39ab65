"""History tables, the opt-in mixins and the registry of versioned models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Mapper, column_property, declared_attr, mapped_column

from .codec import encode
from .inheritance import (
    discriminator_key,
    identities,
    mapper_for,
    refuse_inherited_collections,
    refuse_unsupported,
)
from .map_schema import declare_maps
from .tables import LATE, UTCDateTime, id_type, shadow_table
from .tables import mark_late as mark_late  # re-exported
from .tables import pk_in as pk_in  # re-exported
from .tables import state_type as state_type  # re-exported: other history tables use it

CHANGESET_TABLE = "versioned_admin_changeset"
Strategy = Literal["shadow", "rows"]

# Columns the rows strategy keeps on the versioned table itself.
ROWS_BOOKKEEPING = (
    "version_id",
    "is_current_version",
    "changeset_id",
    "operation",
    "reverted_from",
)


def changeset_table(metadata: MetaData) -> Table:
    """Return the changeset table of ``metadata``, creating it on first use."""
    existing = metadata.tables.get(CHANGESET_TABLE)
    if existing is not None:
        return existing
    event.listen(metadata, "after_create", _create_late_tables)
    return Table(
        CHANGESET_TABLE,
        metadata,
        Column("id", id_type(), primary_key=True, autoincrement=True),
        Column("issued_at", UTCDateTime(), nullable=False),
        Column("user", String(255), nullable=True),
        Column("reason", Text, nullable=True),
        Index(f"ix_{CHANGESET_TABLE}_issued_at", "issued_at"),
        Index(f"ix_{CHANGESET_TABLE}_user", "user"),
    )


@dataclass(eq=False)
class ModelInfo:
    """What the engine knows about one versioned model."""

    model: type
    mapper: Mapper[Any]
    table: Table
    strategy: Strategy
    exclude: frozenset[str]
    changesets: Table
    version_table: Table | None  # shadow strategy only
    maps: dict[str, Any] = field(default_factory=dict)  # name -> maps.MapSpec
    # The versioned model this one inherits from: the two share ``table`` (the base's), its key
    # and its history table.
    parent: ModelInfo | None = None
    # Statements and lookups the writer builds once for this model (per dialect), here rather
    # than in module-level caches keyed by id(), which a new model could inherit.
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> ModelInfo:
        """The base of the versioned hierarchy this model belongs to (itself if none)."""
        info = self
        while info.parent is not None:
            info = info.parent
        return info

    @cached_property
    def collections(self) -> tuple[Any, ...]:
        """Recorded one-to-many and many-to-many relationships; read once mappers are configured."""
        from .relations import collection_specs

        return collection_specs(self)

    @cached_property
    def fields(self) -> tuple[tuple[str, Column[Any]], ...]:
        """(attribute key, column) pairs recorded in a state; read once mappers are configured."""
        bookkeeping = set(ROWS_BOOKKEEPING) if self.strategy == "rows" else set()
        # Joined-table inheritance maps a class to its base's table and its own.
        tables = {id(t) for t in self.mapper.tables}
        pk = {id(c) for c in _logical_pk(self.mapper, self.strategy)}
        found: list[tuple[str, Column[Any]]] = []
        for prop in self.mapper.column_attrs:
            cols = [c for c in prop.columns if isinstance(c, Column) and id(c.table) in tables]
            if not cols:
                continue
            # A joined subclass's key attribute maps both tables' key columns: the base's
            # column is the one the history is keyed by.
            col = next((c for c in cols if id(c) in pk), cols[0])
            if prop.key in self.exclude or col.name in bookkeeping:
                continue
            found.append((prop.key, col))
        return tuple(found)

    @cached_property
    def field_keys(self) -> frozenset[str]:
        """The recorded attribute keys, for fast membership tests."""
        return frozenset(k for k, _c in self.fields)

    @cached_property
    def pk_keys(self) -> tuple[str, ...]:
        """Attribute keys of the record's logical primary key."""
        pk = {id(c) for c in _logical_pk(self.mapper, self.strategy)}
        return tuple(k for k, c in self.fields if id(c) in pk)

    @property
    def pk_columns(self) -> list[Column[Any]]:
        """The live table's logical primary key columns."""
        by_key = dict(self.fields)
        return [by_key[k] for k in self.pk_keys]

    def field_types(self) -> dict[str, Any]:
        """Attribute key -> column type, for decoding stored states."""
        return {key: col.type for key, col in self.fields}

    @cached_property
    def discriminator(self) -> str | None:
        """State key of the column naming a record's class (inheritance), if recorded."""
        key = discriminator_key(self.mapper)
        return key if key in self.field_keys else None

    @cached_property
    def kinds(self) -> tuple[Any, ...] | None:
        """Stored discriminator values of this model's records in the shared history; None for
        a hierarchy's base, all of whose versions are its records."""
        if self.parent is None or self.discriminator is None:
            return None
        return tuple(encode(v) for v in identities(self.mapper))

    def family(self) -> list[ModelInfo]:
        """This model's info and its versioned subclasses' (bases before subclasses)."""
        found = (_own_info(m.class_) for m in self.mapper.self_and_descendants)
        return [i for i in found if i is not None]

    def info_for(self, state: Mapping[str, Any]) -> ModelInfo:
        """The info of the class a stored state is a record of: a subclass's, by the state's
        discriminator, or this one."""
        key = self.discriminator
        if key is None:
            return self
        found = mapper_for(self.mapper, key, self.field_types()[key], state)
        info = _own_info(found.class_) if found is not None else None
        return info if info is not None and info.root is self.root else self


def _logical_pk(mapper: Mapper[Any], strategy: Strategy) -> list[Column[Any]]:
    # Mapper.primary_key is set at construction, so this never configures mappers early.
    skip = set(ROWS_BOOKKEEPING) if strategy == "rows" else set()
    return [c for c in mapper.primary_key if isinstance(c, Column) and c.name not in skip]


# Each versioned model carries its own ModelInfo, on the class (no registry in this module).
_CLASS_ATTR = "__versioned_admin_info__"


def _own_info(cls: type) -> ModelInfo | None:
    info = vars(cls).get(_CLASS_ATTR)
    return info if isinstance(info, ModelInfo) else None


def _attach(mapper: Mapper[Any], cls: type, info: ModelInfo) -> None:
    setattr(cls, _CLASS_ATTR, info)


def model_info(model: type | object) -> ModelInfo | None:
    """Return the engine's description of a model (or instance), None if not versioned."""
    cls = model if isinstance(model, type) else type(model)
    info = _own_info(cls)
    if info is None:
        # A plain (unmapped) subclass of a versioned model.
        for base in cls.__mro__[1:]:
            info = _own_info(base)
            if info is not None and info.mapper.local_table is getattr(cls, "__table__", None):
                return info
        return None
    return info


def registered() -> list[ModelInfo]:
    """Every versioned model the engine knows (found through the mixins' subclasses)."""
    found: list[ModelInfo] = []
    seen: set[type] = set()
    todo = list(_VersionedBase.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        info = _own_info(cls)
        if info is not None:
            found.append(info)
        todo.extend(cls.__subclasses__())
    return found


def require_info(model: type | object) -> ModelInfo:
    """Like model_info but raises for models that are not versioned."""
    from .types import VersioningError

    info = model_info(model)
    if info is None:
        name = model.__name__ if isinstance(model, type) else type(model).__name__
        raise VersioningError(f"{name} is not versioned: add the Versioned mixin")
    return info


def is_versioned(model: type | object) -> bool:
    """True if the model (or instance) is versioned."""
    return model_info(model) is not None


class _VersionedBase:
    __versioned__: ClassVar[dict[str, Any]] = {}
    __versioned_strategy__: ClassVar[Strategy] = "shadow"


class Versioned(_VersionedBase):
    """Mixin: keep every state of this model's rows in ``<table>_version`` (shadow strategy).

    Options go in ``__versioned__ = {"exclude": ["column", ...]}``.
    """


class VersionedRows(_VersionedBase):
    """Mixin (rows strategy): an UPDATE becomes an INSERT of a row keyed ``(id…, version_id)``."""

    __versioned_strategy__: ClassVar[Strategy] = "rows"

    version_id: Mapped[int] = mapped_column(
        Integer, primary_key=True, default=1, autoincrement=False
    )
    is_current_version: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, index=True
    )
    operation: Mapped[str] = mapped_column(String(8), nullable=False, default="insert")
    reverted_from: Mapped[int | None] = mapped_column(Integer, nullable=True)

    @declared_attr
    def changeset_id(cls) -> Mapped[int | None]:  # noqa: N805
        return mapped_column(
            id_type(), ForeignKey(f"{CHANGESET_TABLE}.id"), nullable=True, index=True
        )


@event.listens_for(Mapper, "after_configured")
def _add_calc_is_current() -> None:
    """Give rows-strategy models ``calc_is_current_version``, computed in SQL."""
    from .relations import configure_collections

    # First, as it may refuse a collection the rows strategy cannot record (loudly, here).
    infos = registered()
    configure_collections([i for i in infos if i.mapper.configured])
    refuse_inherited_collections([i for i in infos if i.mapper.configured])
    for info in infos:
        cls = info.model
        if info.strategy != "rows" or len(info.pk_keys) != 1:
            continue
        if "calc_is_current_version" in cls.__dict__:
            continue
        table = info.table
        alias = table.alias()
        key_col = info.pk_columns[0]
        cls.calc_is_current_version = column_property(  # type: ignore[attr-defined]
            select(func.max(alias.c.version_id) == table.c.version_id)
            .where(alias.c[key_col.name] == table.c[key_col.name])
            .scalar_subquery()
        )


def _create_late_tables(metadata: MetaData, connection: Any, **kw: Any) -> None:
    """Create history tables that ``create_all`` could not see because mappers were unconfigured.

    A ``secondary=lambda: ...`` or a rows-strategy collection is only known once the mappers
    are configured, which a plain ``create_all()`` after the model definitions never triggers.
    """
    for reg in {id(i.mapper.registry): i.mapper.registry for i in registered()
                if i.table.metadata is metadata}.values():
        reg.configure(cascade=True)
    created = set(kw.get("tables") or ())
    for table in metadata.sorted_tables:
        if table.info.get(LATE) and table not in created:
            table.create(connection, checkfirst=True)


def _noop_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
    """Attribute 'set' listener that exists only to request active history."""


@event.listens_for(_VersionedBase, "after_mapper_constructed", propagate=True)
def _register(mapper: Mapper[Any], cls: type) -> None:
    """Build the history tables as soon as a versioned model is mapped."""
    if _own_info(cls) is not None:
        return
    options = dict(getattr(cls, "__versioned__", {}) or {})
    parent = _own_info(mapper.inherits.class_) if mapper.inherits is not None else None
    if parent is not None:
        _attach(mapper, cls, _subclass_info(mapper, cls, parent, options))
        return
    strategy: Strategy = options.get("strategy", getattr(cls, "__versioned_strategy__", "shadow"))
    table = mapper.local_table
    if not isinstance(table, Table):
        raise TypeError(f"{cls.__name__}: only table-mapped models can be versioned")
    changesets = changeset_table(table.metadata)
    version_table = None
    if strategy == "shadow" and table.autoincrement_column is not None:
        # SQLite hands a deleted row's id to the next insert unless AUTOINCREMENT is on; a
        # new record would then continue the deleted one's history.
        table.dialect_options["sqlite"]["autoincrement"] = True
    if strategy == "shadow":
        version_table = shadow_table(table, _logical_pk(mapper, strategy), changesets)
    from .relations import declare_associations

    declare_associations(mapper, changesets)

    maps = declare_maps(cls, mapper, table, changesets, _logical_pk(mapper, strategy))
    if maps and strategy != "shadow":
        raise TypeError(f"{cls.__name__}: versioned maps need the shadow strategy")
    _attach(mapper, cls, ModelInfo(
        model=cls,
        mapper=mapper,
        table=table,
        strategy=strategy,
        exclude=frozenset(options.get("exclude", ())),
        changesets=changesets,
        version_table=version_table,
        maps=maps,
    ))


def _subclass_info(
    mapper: Mapper[Any], cls: type, parent: ModelInfo, options: dict[str, Any]
) -> ModelInfo:
    """A subclass shares its base's table, key and history; its states add its own columns."""
    exclude = parent.exclude | frozenset(options.get("exclude", ()))
    refuse_unsupported(mapper, cls, parent.model, parent.strategy, exclude)
    from .relations import declare_associations

    declare_associations(mapper, parent.changesets)
    # Inherited maps keep the base's tables (found by name), so a record keeps its values.
    maps = declare_maps(cls, mapper, parent.table, parent.changesets, _logical_pk(mapper, "shadow"))
    return ModelInfo(
        model=cls,
        mapper=mapper,
        table=parent.table,
        strategy=parent.strategy,
        exclude=exclude,
        changesets=parent.changesets,
        version_table=parent.version_table,
        maps=maps,
        parent=parent,
    )


@event.listens_for(_VersionedBase, "mapper_configured", propagate=True)
def _request_active_history(mapper: Mapper[Any], cls: type) -> None:
    """Make setting a recorded attribute load its old value, so no-op saves are detectable."""
    info = _own_info(cls)
    if info is None:
        return
    for key, _col in info.fields:
        attr = getattr(cls, key)
        if hasattr(attr.dispatch, "_active_history"):
            # The flag event.listen(..., active_history=True) sets, without its listener: a
            # listener call per attribute set made building 100 new records 0.55 ms slower.
            setattr(attr.dispatch, "_active_history", True)  # noqa: B010
        else:
            event.listen(attr, "set", _noop_set, active_history=True)
