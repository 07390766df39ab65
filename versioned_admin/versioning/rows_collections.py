"""Collections of rows-strategy models, recorded with each new row of the record.

A rows-strategy version is a row of the model's own table, which has no room for lists of
related keys, so ``<table>_collections`` holds them: one row per version, keyed like that
version's row. A change to a collection alone gives the record its next row in the same flush,
exactly as a column change does; association tables log their links as for the shadow strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    ForeignKeyConstraint,
    Integer,
    Select,
    Table,
    UnaryExpression,
    select,
    tuple_,
)
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.base import NO_VALUE
from sqlalchemy.orm.interfaces import MANYTOONE
from sqlalchemy.sql import operators

from .relations import CollectionSpec, Pk, association_rows, current, items_changed
from .schema import ModelInfo, mark_late, model_info, pk_in, registered, state_type
from .writer import pk_of

if TYPE_CHECKING:
    from .rows import RowsWork

SUFFIX = "_collections"
ChangesetFor = Callable[[Session, ModelInfo], int]
Links = dict[Table, list[dict[str, Any]]]


def side_table(info: ModelInfo) -> Table | None:
    """``<table>_collections`` of a rows-strategy model with collections, if declared."""
    table = info.table
    name = table.name + SUFFIX
    return table.metadata.tables.get(name if table.schema is None else f"{table.schema}.{name}")


def declare(info: ModelInfo) -> None:
    """Build ``<table>_collections`` once the rows-strategy model's collections are known."""
    if info.strategy != "rows" or not info.collections or side_table(info) is not None:
        return
    table = info.table
    names = [c.name for c in info.pk_columns]
    if {"version_id", "state"} & set(names):
        raise ValueError(f"{table.name}: primary key columns clash with history columns")
    name = table.name + SUFFIX
    mark_late(Table(
        name, table.metadata,
        *[Column(c.name, c.type.copy(), primary_key=True, autoincrement=False)
          for c in info.pk_columns],
        Column("version_id", Integer, primary_key=True, autoincrement=False),
        Column("state", state_type(), nullable=False),  # collection key -> related keys
        ForeignKeyConstraint([*names, "version_id"],
                             [table.c[n] for n in names] + [table.c.version_id],
                             name=f"fk_{name}_row"),
        schema=table.schema,
    ))


def _infos() -> list[ModelInfo]:
    return [i for i in registered() if i.strategy == "rows" and i.collections]


# --------------------------------------------------------------------------- before_flush


def add_changed_parents(session: Session, work: RowsWork) -> None:
    """Give each record whose collections this flush changes its next row (an update)."""
    for info in _infos():
        wanted = _changed_parents(session, info)
        if not wanted:
            continue
        handled = [o for i, o in work.inserts + work.deletes if i is info]
        handled += [o for i, o, _c in work.updates if i is info]
        for pk in {_record_key(info, o) for o in handled}:
            wanted.pop(pk, None)
        # The parent's live row: an instance from a relation may be an older row of the record.
        live = {pk: o for pk, o in wanted.items() if o is not None and _is_live_row(o)}
        missing = [pk for pk in wanted if pk not in live]
        if missing:
            stmt: Select[Any] = select(info.model).where(
                pk_in(info.pk_columns, missing), info.table.c.is_current_version.is_(True))
            live.update((pk_of(info, o), o) for o in session.scalars(stmt))
        for obj in live.values():
            if obj not in session.deleted and obj not in session.new:
                work.updates.append((info, obj, []))


def _record_key(info: ModelInfo, obj: object) -> Pk:
    """The record's key, from the identity when persistent (an expired row is not loaded)."""
    state = attributes.instance_state(obj)
    if state.key is None:
        return pk_of(info, obj)
    ident = dict(zip([c.name for c in state.mapper.primary_key], state.key[1], strict=True))
    return tuple(ident[c.name] for c in info.pk_columns)


def _is_live_row(obj: object) -> bool:
    state = attributes.instance_state(obj)
    return state.key is not None and state.dict.get("is_current_version") is True


def _changed_parents(session: Session, info: ModelInfo) -> dict[Pk, object | None]:
    """Records of ``info`` whose collections this flush changes, from either side."""
    found: dict[Pk, object | None] = {}
    index: dict[Pk, object] | None = None

    def add(obj: object) -> None:
        if isinstance(obj, info.model) and model_info(obj) is info:
            found.setdefault(pk_of(info, obj), obj)

    touched = [*session.new, *session.dirty, *session.deleted]
    for spec in info.collections:
        if spec.secondary is None:
            _load_keys(session, spec, [o for o in session.deleted
                                       if isinstance(o, spec.target.class_)])
        for obj in touched:
            deleted = obj in session.deleted
            if isinstance(obj, info.model) and not deleted and items_changed(obj, spec.key):
                add(obj)
            if spec.secondary is not None:
                for rel in attributes.instance_state(obj).mapper.relationships:
                    if rel.secondary is spec.secondary and rel is not spec.prop:
                        for other in items_changed(obj, rel.key, all_=deleted):
                            add(other)
            elif isinstance(obj, spec.target.class_):
                moved, stays = _child_parents(session, spec, obj)
                for pk in moved:
                    found.setdefault(pk, None)
                if stays is not None and pk_ok(stays):
                    if index is None:  # live rows in memory, built once per flush
                        index = {pk_of(info, o): o for o in session.identity_map.values()
                                 if model_info(o) is info and _is_live_row(o)}
                    if _reordered(spec, obj, index.get(stays)):
                        found.setdefault(stays, None)
                for other in _parents_set_on(spec, obj):
                    add(other)
    return found


def pk_ok(pk: Pk) -> bool:
    """True if every value of a key is known."""
    return all(v is not None and v is not NO_VALUE for v in pk)


def _load_keys(session: Session, spec: CollectionSpec, children: list[object]) -> None:
    """Load the expired parent keys of deleted children with one SELECT per 500."""
    idents = []
    for child in children:
        state = attributes.instance_state(child)
        if state.key is not None and not set(_fk_keys(spec, child)) <= state.dict.keys():
            idents.append(tuple(state.key[1]))
    cols = list(spec.target.primary_key)
    for i in range(0, len(idents), 500):
        # An ORM query fills the expired attributes of the instances already in the session.
        session.execute(select(spec.target.class_).where(pk_in(cols, idents[i:i + 500]))).all()


def _fk_keys(spec: CollectionSpec, child: object) -> list[str]:
    mapper = attributes.instance_state(child).mapper
    return [mapper.get_property_by_column(c).key for c in spec.parent_cols]


def _child_parents(session: Session, spec: CollectionSpec, child: object
                   ) -> tuple[set[Pk], Pk | None]:
    """(parents a one-to-many child joins or leaves through its key, parent it stays with)."""
    state = attributes.instance_state(child)
    keys = _fk_keys(spec, child)
    if child in session.new:
        return {pk for pk in [tuple(state.dict.get(k) for k in keys)] if pk_ok(pk)}, None
    if child in session.deleted:
        old = tuple(getattr(child, k) for k in keys)  # loads an expired key
        return ({old} if pk_ok(old) else set()), None
    committed = state.committed_state
    new = tuple(state.dict.get(k) for k in keys)
    old = tuple(committed.get(k, state.dict.get(k)) for k in keys)
    if any(v is NO_VALUE for v in old):
        # The key was set without loading the old one: the row still holds it.
        mapper = state.mapper
        ident = pk_in(list(mapper.primary_key), [tuple(state.key[1])]) if state.key else None
        if ident is not None:
            cols = [mapper.get_property(k).columns[0] for k in keys]
            row = session.connection().execute(select(*cols).where(ident)).first()
            old = tuple(row) if row is not None else old
    if old != new:
        return {pk for pk in (old, new) if pk_ok(pk)}, None
    return set(), new if spec.ordered else None


def _parents_set_on(spec: CollectionSpec, child: object) -> list[object]:
    """Parents set or unset through the child's many-to-one (before the flush syncs its key)."""
    names = {c.name for c in spec.parent_cols}
    found: list[object] = []
    for rel in attributes.instance_state(child).mapper.relationships:
        if rel.direction is MANYTOONE and rel.mapper is spec.prop.parent and names <= {
                c.name for c in rel.local_columns}:
            found.extend(items_changed(child, rel.key))
    return found


def _order_keys(spec: CollectionSpec) -> list[tuple[str, bool]] | None:
    """(attribute key, descending) of the collection's order_by, None if not plain columns."""
    keys: list[tuple[str, bool]] = []
    for expr in spec.prop.order_by or ():
        desc = False
        if isinstance(expr, UnaryExpression):
            desc = expr.modifier is operators.desc_op
            expr = expr.element
        if not isinstance(expr, Column):
            return None
        try:
            keys.append((spec.target.get_property_by_column(expr).key, desc))
        except Exception:  # noqa: BLE001 - an unmapped column: we cannot predict the order
            return None
    return keys


def _reordered(spec: CollectionSpec, child: object, parent: object | None) -> bool:
    """True if the child's changed order_by values may reorder its parent's collection."""
    keys = _order_keys(spec)
    state = attributes.instance_state(child)
    if keys is None:
        return True
    if not any(k in state.committed_state for k, _d in keys):
        return False
    members = attributes.instance_dict(parent).get(spec.key) if parent is not None else None
    if members is None:
        return True  # the collection is not loaded: the order may have changed

    def order(new: bool) -> list[int]:
        out = list(members)
        for key, desc in reversed(keys):
            def value(x: object, key: str = key) -> Any:
                s = attributes.instance_state(x)
                return s.dict.get(key) if new else s.committed_state.get(key, s.dict.get(key))
            out.sort(key=value, reverse=desc)
        return [id(x) for x in out]

    try:
        return order(True) != order(False)
    except TypeError:  # None against a number: the database's NULL order decides
        return True


# ---------------------------------------------------------------------------- after_flush


def record(session: Session, changeset_for: ChangesetFor, links: Links,
           owners: dict[Table, CollectionSpec]) -> None:
    """Write the collections of every rows-strategy row this flush inserted (one per version)."""
    for info in _infos():
        made: list[Any] = [o for o in session.new if model_info(o) is info]
        table = side_table(info)
        if not made or table is None:
            continue
        keys = [(pk_of(info, o), int(o.version_id), str(o.operation)) for o in made]
        prev = _stored(session, info, table, [(*pk, n - 1) for pk, n, _op in keys if n > 1])
        pks = list(dict.fromkeys(pk for pk, _n, _op in keys))
        now = {s.key: current(session, s, pks) for s in info.collections}
        cs_id = changeset_for(session, info)
        rows: list[dict[str, Any]] = []
        for pk, number, op in keys:
            before = prev.get((*pk, number - 1), {})
            state: dict[str, Any] = {}
            for spec in info.collections:
                old = before.get(spec.key)
                # A tombstone keeps the lists its record had; its links stay for a restore.
                new = (old or []) if op == "delete" else now[spec.key][pk]
                state[spec.key] = new
                if spec.secondary is not None and owners.setdefault(spec.secondary, spec) is spec:
                    links.setdefault(spec.secondary, []).extend(
                        association_rows(spec, pk, old or [], new, cs_id))
            row = {c.name: v for c, v in zip(info.pk_columns, pk, strict=True)}
            rows.append({**row, "version_id": number, "state": state})
        session.connection().execute(table.insert(), rows)


def _stored(session: Session, info: ModelInfo, table: Table,
            keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """(pk…, version_id) -> the lists stored for that version (one SELECT)."""
    if not keys:
        return {}
    cols = [table.c[c.name] for c in info.pk_columns] + [table.c.version_id]
    rows = session.connection().execute(
        select(*cols, table.c.state).where(tuple_(*cols).in_(keys)))
    return {tuple(r[:-1]): r[-1] for r in rows}
