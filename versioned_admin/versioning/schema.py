"""History tables, the opt-in mixins and the registry of versioned models."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
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
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, Mapper, column_property, declared_attr, mapped_column
from sqlalchemy.types import JSON, TypeDecorator

CHANGESET_TABLE = "versioned_admin_changeset"
VERSION_SUFFIX = "_version"
# Table.info flag of history tables that can only be built once mappers are configured.
LATE = "versioned_admin.late"
Strategy = Literal["shadow", "rows"]

# Columns the rows strategy keeps on the versioned table itself.
ROWS_BOOKKEEPING = (
    "version_id",
    "is_current_version",
    "changeset_id",
    "operation",
    "reverted_from",
)
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


def _id_type() -> Any:
    # SQLite only autoincrements INTEGER PRIMARY KEY.
    return BigInteger().with_variant(Integer(), "sqlite")


def changeset_table(metadata: MetaData) -> Table:
    """Return the changeset table of ``metadata``, creating it on first use."""
    existing = metadata.tables.get(CHANGESET_TABLE)
    if existing is not None:
        return existing
    event.listen(metadata, "after_create", _create_late_tables)
    return Table(
        CHANGESET_TABLE,
        metadata,
        Column("id", _id_type(), primary_key=True, autoincrement=True),
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

    @cached_property
    def collections(self) -> tuple[Any, ...]:
        """Recorded one-to-many and many-to-many relationships; read once mappers are configured."""
        from .relations import collection_specs

        return collection_specs(self)

    @cached_property
    def fields(self) -> tuple[tuple[str, Column[Any]], ...]:
        """(attribute key, column) pairs recorded in a state; read once mappers are configured."""
        bookkeeping = set(ROWS_BOOKKEEPING) if self.strategy == "rows" else set()
        found: list[tuple[str, Column[Any]]] = []
        for prop in self.mapper.column_attrs:
            col = prop.columns[0]
            if not isinstance(col, Column) or col.table is not self.table:
                continue
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
        names = {c.name for c in _logical_pk(self.mapper, self.strategy)}
        return tuple(k for k, c in self.fields if c.name in names)

    @property
    def pk_columns(self) -> list[Column[Any]]:
        """The live table's logical primary key columns."""
        by_key = dict(self.fields)
        return [by_key[k] for k in self.pk_keys]

    def field_types(self) -> dict[str, Any]:
        """Attribute key -> column type, for decoding stored states."""
        return {key: col.type for key, col in self.fields}


def _logical_pk(mapper: Mapper[Any], strategy: Strategy) -> list[Column[Any]]:
    # Mapper.primary_key is set at construction, so this never configures mappers early.
    skip = set(ROWS_BOOKKEEPING) if strategy == "rows" else set()
    return [c for c in mapper.primary_key if isinstance(c, Column) and c.name not in skip]


def pk_in(cols: list[Any], pks: list[tuple[Any, ...]]) -> ColumnElement[bool]:
    """``cols IN pks``: a plain IN for one column, a tuple IN for composite keys."""
    if len(cols) == 1:
        return cols[0].in_([p[0] for p in pks])
    return tuple_(*cols).in_(pks)


_REGISTRY: dict[type, ModelInfo] = {}


def model_info(model: type | object) -> ModelInfo | None:
    """Return the engine's description of a model (or instance), None if not versioned."""
    cls = model if isinstance(model, type) else type(model)
    info = _REGISTRY.get(cls)
    if info is None:
        for base in cls.__mro__[1:]:
            info = _REGISTRY.get(base)
            if info is not None and info.table is getattr(cls, "__table__", None):
                return info
        return None
    return info


def registered() -> list[ModelInfo]:
    """Every versioned model the engine knows."""
    return list(_REGISTRY.values())


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
            _id_type(), ForeignKey(f"{CHANGESET_TABLE}.id"), nullable=True, index=True
        )


@event.listens_for(Mapper, "after_configured")
def _add_calc_is_current() -> None:
    """Give rows-strategy models ``calc_is_current_version``, computed in SQL."""
    from .relations import configure_collections

    # First, as it may refuse a collection the rows strategy cannot record (loudly, here).
    configure_collections([i for i in _REGISTRY.values() if i.mapper.configured])
    for info in list(_REGISTRY.values()):
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


def mark_late(table: Table) -> Table:
    """Flag a history table declared after mapper configuration (create_all may have run)."""
    table.info[LATE] = True
    return table


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


def _shadow_table(table: Table, pk_cols: list[Column[Any]], changesets: Table) -> Table:
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
            _id_type(),
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


def _noop_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> None:
    """Attribute 'set' listener that exists only to request active history."""


@event.listens_for(_VersionedBase, "after_mapper_constructed", propagate=True)
def _register(mapper: Mapper[Any], cls: type) -> None:
    """Build the history tables as soon as a versioned model is mapped."""
    if cls in _REGISTRY or mapper.inherits is not None and model_info(mapper.inherits.class_):
        return
    options = dict(getattr(cls, "__versioned__", {}) or {})
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
        version_table = _shadow_table(table, _logical_pk(mapper, strategy), changesets)
    from .maps import declare_maps
    from .relations import declare_associations

    declare_associations(mapper, changesets)

    maps = declare_maps(cls, mapper, table, changesets, _logical_pk(mapper, strategy))
    if maps and strategy != "shadow":
        raise TypeError(f"{cls.__name__}: versioned maps need the shadow strategy")
    _REGISTRY[cls] = ModelInfo(
        model=cls,
        mapper=mapper,
        table=table,
        strategy=strategy,
        exclude=frozenset(options.get("exclude", ())),
        changesets=changesets,
        version_table=version_table,
        maps=maps,
    )


@event.listens_for(_VersionedBase, "mapper_configured", propagate=True)
def _request_active_history(mapper: Mapper[Any], cls: type) -> None:
    """Make setting a recorded attribute load its old value, so no-op saves are detectable."""
    info = _REGISTRY.get(cls)
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
