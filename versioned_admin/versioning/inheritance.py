"""Single- and joined-table inheritance: one history per hierarchy, keyed by the base's key.

A subclass record's versions go to its base's ``<table>_version``. Each state holds every
column the record's class maps (base table and sub-table) and the discriminator, which tells
history readers which class a stored state belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ColumnElement, Select, select
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.exc import UnmappedColumnError

from .codec import decode, encode
from .types import VersioningError

if TYPE_CHECKING:
    from .schema import ModelInfo

Pk = tuple[Any, ...]
State = dict[str, Any]


def discriminator_key(mapper: Mapper[Any]) -> str | None:
    """Attribute key of the hierarchy's discriminator column, None if it has none."""
    on = mapper.polymorphic_on
    if not isinstance(on, Column):
        return None  # none, or an expression: a stored state cannot name its class
    try:
        return mapper.get_property_by_column(on).key
    except UnmappedColumnError:
        return None


def refuse_unsupported(
    mapper: Mapper[Any], cls: type, parent: type, strategy: str, exclude: Iterable[str]
) -> None:
    """Raise TypeError, at mapping time, for a subclass whose history could not be kept."""
    name, base = cls.__name__, parent.__name__
    if mapper.concrete:
        raise TypeError(
            f"{name}: concrete-table inheritance from {base} is not versioned (the two "
            f"tables' keys are unrelated); use single- or joined-table inheritance"
        )
    if strategy != "shadow":
        raise TypeError(
            f"{name}: the rows strategy does not version subclasses ({name} inherits from "
            f"{base}); use the shadow strategy (Versioned) for the hierarchy"
        )
    key = discriminator_key(mapper)
    if key is None:
        raise TypeError(
            f"{name}: a versioned subclass needs a discriminator column "
            f"(__mapper_args__ = {{'polymorphic_on': ...}} on {base}) so that the shared "
            f"history can tell {name} records from other {base} records"
        )
    if key in set(exclude):
        raise TypeError(f"{name}: the discriminator {key!r} cannot be excluded from the history")


def identities(mapper: Mapper[Any]) -> tuple[Any, ...]:
    """The discriminator values of a mapper's class and of its subclasses."""
    return tuple(m.polymorphic_identity for m in mapper.self_and_descendants
                 if m.polymorphic_identity is not None)


def mapper_for(mapper: Mapper[Any], key: str, type_: Any,
               state: Mapping[str, Any]) -> Mapper[Any] | None:
    """The mapper of the class a stored state is a record of (by its discriminator)."""
    value = state.get(key)
    if value is None or isinstance(value, (list, dict)):
        return None
    found = mapper.polymorphic_map.get(value)  # str and int identities are stored as they are
    if found is None:
        try:
            found = mapper.polymorphic_map.get(decode(value, type_))
        except (ValueError, TypeError, KeyError):
            return None
    return found


def kind_clause(info: ModelInfo, state: Any) -> ColumnElement[bool] | None:
    """``state``'s discriminator IN the model's identities; None where every version is one."""
    kinds = info.kinds
    if kinds is None or info.discriminator is None:
        return None
    value = state[info.discriminator]
    if all(isinstance(k, int) and not isinstance(k, bool) for k in kinds):
        return value.as_integer().in_(kinds)
    return value.as_string().in_([str(k) for k in kinds])


def live_kind(info: ModelInfo) -> ColumnElement[bool] | None:
    """Live rows of the model's class and subclasses (the discriminator IN their identities);
    None for a hierarchy's base, every row of whose table is one of its records."""
    if info.parent is None or info.kinds is None:
        return None
    on = info.mapper.polymorphic_on
    assert isinstance(on, Column)
    return on.in_(identities(info.mapper))


def states_select(info: ModelInfo) -> tuple[Select[Any], Callable[[Any], tuple[Pk, State]]]:
    """A SELECT of every column of the model's live records, its subclasses' included, and
    the function turning one of its rows into (primary key, encoded state) by the row's class.

    A joined subclass's own table is joined (outer-joined for a base's subclasses); a
    subclass's rows are limited to its class by the discriminator.
    """
    family = info.family()
    source: Any = info.mapper.persist_selectable
    joined = {id(t) for t in info.mapper.tables}
    cols: dict[int, Any] = {}
    for member in family:
        table = member.mapper.local_table
        if id(table) not in joined:  # a subclass's own table (joined-table inheritance)
            joined.add(id(table))
            source = source.outerjoin(table, member.mapper.inherit_condition)
        for _key, col in member.fields:
            cols.setdefault(id(col), col)
    columns = list(cols.values())
    stmt = select(*columns).select_from(source)
    kind = live_kind(info)
    if kind is not None:
        stmt = stmt.where(kind)
    at = {ident: i for i, ident in enumerate(cols)}  # column id -> position in the row
    pk_at = [at[id(c)] for c in info.pk_columns]
    key = info.discriminator if len(family) > 1 else None
    key_at = at[id(dict(info.fields)[key])] if key is not None else 0

    def read(row: Any) -> tuple[Pk, State]:
        member = info if key is None else info.info_for({key: row[key_at]})
        state = {k: encode(row[at[id(c)]]) for k, c in member.fields}
        return tuple(row[i] for i in pk_at), state

    return stmt, read


def refuse_inherited_collections(infos: Iterable[ModelInfo]) -> None:
    """Raise VersioningError for a recorded collection that versioned subclasses inherit.

    The flush records a collection per model, so a base's collection would be versioned once
    for the base and once for each subclass that inherits it.
    """
    for info in infos:
        if info.parent is None:
            continue
        for spec in info.collections:
            owner = spec.prop.parent
            if owner is not info.mapper:
                raise VersioningError(
                    f"{owner.class_.__name__}.{spec.key}: a collection on a versioned model "
                    f"that versioned subclasses ({info.model.__name__}) inherit is not recorded "
                    f"yet; declare it viewonly=True, list it in __versioned__['exclude'], or "
                    f"declare it on the subclasses"
                )
