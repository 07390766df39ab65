"""Collections: one-to-many and many-to-many relationships recorded in the parent's versions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Table, event, func, select
from sqlalchemy.orm import Mapper, RelationshipProperty, Session, attributes
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE
from sqlalchemy.orm.interfaces import MANYTOMANY, ONETOMANY
from sqlalchemy.orm.util import identity_key
from sqlalchemy.types import NullType

from .codec import encode
from .schema import ModelInfo, mark_late, model_info, pk_in, registered
from .types import VersioningError
from .writer import pk_of, read_states, snapshot, version_row

ASSOCIATION_SUFFIX = "_version"
Pk = tuple[Any, ...]
Rows = dict[int, tuple[ModelInfo, list[dict[str, Any]]]]
ChangesetFor = Callable[[Session, ModelInfo], int]


@dataclass(frozen=True)
class CollectionSpec:
    """One recorded collection of a versioned model."""

    key: str
    prop: RelationshipProperty[Any]
    target: Mapper[Any]
    ordered: bool
    parent_cols: tuple[Any, ...]  # columns holding the parent's key (child or secondary)
    target_cols: tuple[Any, ...]  # columns holding the target's key
    secondary: Table | None


def target_pk(mapper: Mapper[Any]) -> list[Column[Any]]:
    """A related model's key columns (a versioned one's logical key)."""
    info = model_info(mapper.class_)
    if info is not None:
        return info.pk_columns
    return [c for c in mapper.primary_key if isinstance(c, Column)]


def collection_specs(info: ModelInfo) -> tuple[CollectionSpec, ...]:
    """The model's one-to-many and many-to-many relationships that versions record.

    Rows strategy: a collection of a shape it cannot record raises VersioningError, because
    its history would otherwise be lost without a word (the shadow strategy skips it).
    """
    found: list[CollectionSpec] = []
    for rel in info.mapper.relationships:
        if not rel.uselist or rel.viewonly or rel.key in info.exclude:
            continue
        spec = _spec(info, rel)
        if spec is not None:
            found.append(spec)
        elif info.strategy == "rows" and rel.direction in (ONETOMANY, MANYTOMANY):
            keys = ", ".join(c.name for c in info.pk_columns)
            raise VersioningError(
                f"{info.model.__name__}.{rel.key}: the rows strategy records a one-to-many whose "
                f"foreign key holds the record's key ({keys}) and a many-to-many whose "
                f"association table links by that key (not by version_id, which changes with "
                f"every version); declare it viewonly=True or list it in "
                f"__versioned__['exclude'] to leave it out of the history"
            )
    return tuple(found)


def _spec(info: ModelInfo, rel: RelationshipProperty[Any]) -> CollectionSpec | None:
    pk_names = [c.name for c in info.pk_columns]
    parent_cols: tuple[Any, ...]
    target_cols: tuple[Any, ...]
    if rel.direction is ONETOMANY:
        by_name = {c.name: r for c, r in rel.local_remote_pairs or ()}
        # A rows-strategy child may also point at the parent's row (id, version_id): such
        # children follow the record to each new row, so the record's key finds them all.
        allowed = set(pk_names) | ({"version_id"} if info.strategy == "rows" else set())
        if not set(pk_names) <= set(by_name) <= allowed:
            return None
        parent_cols = tuple(by_name[n] for n in pk_names)
        target_cols = tuple(target_pk(rel.mapper))
    elif rel.direction is MANYTOMANY and isinstance(rel.secondary, Table):
        sync = {p.name: s for p, s in rel.synchronize_pairs}
        tsync = {t.name: s for t, s in rel.secondary_synchronize_pairs or ()}
        tpk = target_pk(rel.mapper)
        if set(sync) != set(pk_names) or set(tsync) != {c.name for c in tpk}:
            return None
        parent_cols = tuple([sync[n] for n in pk_names])
        target_cols = tuple([tsync[c.name] for c in tpk])
    else:
        return None
    ordered = rel.order_by is not False and rel.order_by is not None
    secondary = rel.secondary if isinstance(rel.secondary, Table) else None
    return CollectionSpec(rel.key, rel, rel.mapper, ordered, parent_cols, target_cols, secondary)


def configure_collections(infos: list[ModelInfo]) -> None:
    """Once mappers are configured: read each model's collections and build their history tables.

    ``secondary=`` given as a callable or a name, and backrefs added by other models, are only
    known now; tables built here are created by ``create_all`` even if it ran before.
    """
    from .rows_collections import declare

    for info in infos:
        info.__dict__.pop("collections", None)  # a later configuration may have added some
        for rel in info.mapper.relationships:
            if isinstance(rel.secondary, Table):
                association_table(rel.secondary, info.changesets, late=True)
        declare(info)


# ------------------------------------------------------------- association tables


def declare_associations(mapper: Mapper[Any], changesets: Table) -> None:
    """Build ``<secondary>_version`` for many-to-many tables already known at mapping time."""
    md = changesets.metadata
    for prop in list(mapper._props.values()):
        if not isinstance(prop, RelationshipProperty):
            continue
        # Before configuration the argument is still raw: a Table, a name or a callable.
        secondary: Any = prop._init_args.secondary.argument
        if isinstance(secondary, str):
            secondary = md.tables.get(secondary)
        if isinstance(secondary, Table):
            association_table(secondary, changesets)


def association_table(secondary: Table, changesets: Table, *, late: bool = False) -> Table:
    """The history table of an association table: one row per link added or removed."""
    name = secondary.name + ASSOCIATION_SUFFIX
    md = secondary.metadata
    key = name if secondary.schema is None else f"{secondary.schema}.{name}"
    found = md.tables.get(key)
    if found is not None:
        return found
    table = Table(
        name, md,
        Column("history_id", changesets.c.id.type.copy(), primary_key=True, autoincrement=True),
        *[Column(c.name, c.type.copy(), nullable=True) for c in secondary.columns],
        Column("changeset_id", changesets.c.id.type.copy(), ForeignKey(f"{changesets.name}.id"),
               nullable=False),
        Column("operation", String(8), nullable=False),
        Index(f"ix_{name}_changeset_id", "changeset_id"),
        schema=secondary.schema,
    )

    def copy_types(*_args: Any, **_kw: Any) -> None:
        # A column typed by its foreign key gets its type only once the target is mapped.
        for col in secondary.columns:
            if isinstance(table.c[col.name].type, NullType):
                table.c[col.name].type = col.type.copy()

    event.listen(table, "before_create", copy_types)
    table.info["versioned_admin.copy_types"] = copy_types
    return mark_late(table) if late else table


# ------------------------------------------------------------------ flush support


def _key(values: list[Any]) -> Any:
    return encode(values[0]) if len(values) == 1 else [encode(v) for v in values]


def current(session: Session, spec: CollectionSpec, pks: list[Pk]) -> dict[Pk, list[Any]]:
    """Each parent's collection as the database holds it now (one SELECT)."""
    found: dict[Pk, list[Any]] = {pk: [] for pk in pks}
    if not pks:
        return found
    cols = list(spec.parent_cols)
    cond = pk_in(cols, pks)
    stmt = select(*cols, *spec.target_cols).where(cond)
    tinfo = model_info(spec.target.class_)
    live = None
    if tinfo is not None and tinfo.strategy == "rows":
        live = tinfo.table.c.is_current_version.is_(True)
    if spec.secondary is not None and (spec.ordered or live is not None):
        tpk = target_pk(spec.target)
        stmt = stmt.join_from(spec.secondary, spec.target.local_table, *[
            t == s for t, s in zip(tpk, spec.target_cols, strict=True)])
    if live is not None:
        # A rows-strategy target has a row per version; only the current one is a member.
        stmt = stmt.where(live)
    if spec.ordered:
        stmt = stmt.order_by(*list(spec.prop.order_by or ()))
    n = len(cols)
    for row in session.connection().execute(stmt):
        pk = tuple(row[:n])
        if pk in found:
            found[pk].append(_key(list(row[n:])))
    if not spec.ordered:
        for items in found.values():
            items.sort(key=repr)
    return found


def latest_states(session: Session, info: ModelInfo, pks: list[Pk]) -> dict[Pk, dict[str, Any]]:
    """Each record's latest stored state (collections included), unless it is a delete."""
    vt = info.version_table
    assert vt is not None
    if not pks:
        return {}
    cols = [vt.c[c.name] for c in info.pk_columns]
    later = vt.alias("later")
    newest = select(func.max(later.c.version)).where(
        *[later.c[c.name] == vt.c[c.name] for c in info.pk_columns]).scalar_subquery()
    cond = pk_in(cols, pks)
    rows = session.connection().execute(
        select(*cols, vt.c.state, vt.c.operation).where(cond, vt.c.version == newest))
    n = len(cols)
    return {tuple(r[:n]): r.state for r in rows if r.operation != "delete"}


def items_changed(obj: object, key: str, *, all_: bool = False) -> list[object]:
    """Items added to or removed from a loaded collection (``all_``: every item it holds)."""
    hist = attributes.get_history(obj, key, passive=PASSIVE_NO_INITIALIZE)
    found = list(hist.added or ()) + list(hist.deleted or ())
    return found + list(hist.unchanged or ()) if all_ else found


def _affected(session: Session, infos: list[ModelInfo]) -> dict[int, set[Pk]]:
    """Parents whose collections this flush may have changed, from either side."""
    found: dict[int, set[Pk]] = {id(i): set() for i in infos}
    touched = [*session.new, *session.dirty, *session.deleted]
    for info in infos:
        for spec in info.collections:
            tcls = spec.target.class_
            for obj in touched:
                if isinstance(obj, info.model) and obj not in session.deleted:
                    if items_changed(obj, spec.key):
                        found[id(info)].add(pk_of(info, obj))
                if spec.secondary is None and isinstance(obj, tcls):
                    found[id(info)].update(_one_to_many_parents(spec, obj, obj in session.new))
                if spec.secondary is not None:
                    mapper = attributes.instance_state(obj).mapper
                    for rel in mapper.relationships:
                        if rel.secondary is not spec.secondary or rel is spec.prop:
                            continue
                        others = items_changed(obj, rel.key, all_=obj in session.deleted)
                        found[id(info)].update(
                            pk_of(info, o) for o in others if isinstance(o, info.model))
    return found


def _one_to_many_parents(spec: CollectionSpec, child: object, is_new: bool) -> set[Pk]:
    state = attributes.instance_state(child)
    mapper = state.mapper
    keys = [mapper.get_property_by_column(c).key for c in spec.parent_cols]
    new = tuple(state.dict.get(k) for k in keys)
    found = {new}
    if not is_new:
        old = tuple(state.committed_state.get(k, state.dict.get(k)) for k in keys)
        found.add(old)
    return {pk for pk in found if all(v is not None for v in pk)}


def association_rows(spec: CollectionSpec, pk: Pk, before: list[Any], after: list[Any],
                     cs_id: int) -> list[dict[str, Any]]:
    """Rows of ``<secondary>_version`` for the links one parent gained and lost."""
    rows: list[dict[str, Any]] = []
    for op, items in (("delete", [x for x in before if x not in after]),
                      ("insert", [x for x in after if x not in before])):
        for item in items:
            values = item if isinstance(item, list) else [item]
            row = {c.name: v for c, v in zip(spec.parent_cols, pk, strict=True)}
            row.update({c.name: v for c, v in zip(spec.target_cols, values, strict=True)})
            row.update(changeset_id=cs_id, operation=op)
            rows.append(row)
    return rows


def _lazy_changeset(session: Session, info: ModelInfo,
                    changeset_for: ChangesetFor) -> Callable[[], int]:
    """A function giving the changeset id, asked of ``changeset_for`` on first call only."""
    found: list[int] = []

    def get() -> int:
        if not found:
            found.append(changeset_for(session, info))
        return found[0]

    return get


def extend(session: Session, batches: Rows, objects: dict[tuple[int, Pk], object],
           changeset_for: ChangesetFor, reverts: dict[Any, int] | None = None) -> None:
    """Add collections to this flush's versions; version parents changed only through them.

    ``reverts`` (instance state -> version number) marks a parent that a revert changed only
    through its collections, so its version says which version it was reverted to.
    """
    from .rows_collections import record

    links: dict[Table, list[dict[str, Any]]] = {}
    owners: dict[Table, CollectionSpec] = {}
    infos = [i for i in registered() if i.strategy == "shadow" and i.collections]
    affected = _affected(session, infos) if infos else {}
    for info in infos:
        rows = batches.get(id(info), (info, []))[1]
        # A key deleted and added again in one flush has two rows here: delete, then insert.
        by_pk: dict[Pk, list[dict[str, Any]]] = {}
        for r in rows:
            by_pk.setdefault(tuple(r[f"pk_{c.name}"] for c in info.pk_columns), []).append(r)
        pks = list(dict.fromkeys([*by_pk, *affected[id(info)]]))
        if not pks:
            continue
        prev = latest_states(session, info, pks)
        now = {s.key: current(session, s, pks) for s in info.collections}
        # a record with no version yet (it predates versioning) still gets one for this change
        missing = [pk for pk in pks if pk not in by_pk]
        live = _live_states(session, info, missing, objects)
        # Asked only once something is written: a child's column change that moves no
        # collection must not leave a changeset without versions.
        cs_id = _lazy_changeset(session, info, changeset_for)
        for pk in pks:
            group = by_pk.get(pk)
            if group is None:
                if pk not in live:
                    continue
                state, obj = live[pk]
                reverted = None
                if obj is not None and reverts:
                    reverted = reverts.get(attributes.instance_state(obj))
                group = [version_row(info, pk, "update", 0, state, [], reverted)]
            before = prev.get(pk, {})
            linked = {spec.key: before.get(spec.key) or [] for spec in info.collections}
            for row in group:
                deleting = row["operation"] == "delete"
                for spec in info.collections:
                    old = before.get(spec.key)
                    new = (old or []) if deleting else now[spec.key][pk]
                    row["state"][spec.key] = new
                    if row["operation"] == "update" and old != new and (
                            old is not None or pk in affected[id(info)]):
                        row["changed"].append(spec.key)
                    after = [] if deleting else new
                    if spec.secondary is not None and (
                            owners.setdefault(spec.secondary, spec) is spec):
                        logged = association_rows(spec, pk, linked[spec.key], after, 0)
                        if logged:
                            number = cs_id()
                            for link in logged:
                                link["changeset_id"] = number
                            links.setdefault(spec.secondary, []).extend(logged)
                    linked[spec.key] = after
                before = row["state"]
            row = group[0]
            if pk not in by_pk and row["changed"]:
                row["changeset_id"] = cs_id()
                batches.setdefault(id(info), (info, []))[1].append(row)
    record(session, changeset_for, links, owners)
    write_links(session, links, owners)


def write_links(session: Session, links: dict[Table, list[dict[str, Any]]],
                owners: dict[Table, CollectionSpec]) -> None:
    """Log added and removed links in each ``<secondary>_version`` (one INSERT per table)."""
    for secondary, link_rows in links.items():
        if link_rows:
            owner = model_info(owners[secondary].prop.parent.class_)
            assert owner is not None
            table = association_table(secondary, owner.changesets)
            table.info["versioned_admin.copy_types"]()
            session.connection().execute(table.insert(), link_rows)


def lists_for(session: Session, info: ModelInfo, rows: list[dict[str, Any]]) -> None:
    """Give version rows written outside a flush (bulk statements) the record's collections.

    Such a statement changes columns only, so an update lists the collections as they are and
    a delete the ones its previous version listed.
    """
    if not info.collections or not rows:
        return
    pks = [tuple(r[f"pk_{c.name}"] for c in info.pk_columns) for r in rows]
    prev = latest_states(session, info, pks)
    now = {s.key: current(session, s, pks) for s in info.collections}
    for pk, row in zip(pks, rows, strict=True):
        for spec in info.collections:
            if row["operation"] == "delete":
                row["state"][spec.key] = prev.get(pk, {}).get(spec.key) or []
            else:
                row["state"][spec.key] = now[spec.key][pk]


def _live_states(session: Session, info: ModelInfo, pks: list[Pk],
                 objects: dict[tuple[int, Pk], object]
                 ) -> dict[Pk, tuple[dict[str, Any], object | None]]:
    """(state, instance if loaded) of each parent changed only through its collections."""
    found: dict[Pk, tuple[dict[str, Any], object | None]] = {}
    rest: list[Pk] = []
    loaded: dict[Pk, object] = {}
    for pk in pks:
        obj = objects.get((id(info), pk))
        if obj is None:
            ident = pk[0] if len(pk) == 1 else pk
            obj = session.identity_map.get(identity_key(info.model, ident))
        if obj is not None:
            loaded[pk] = obj
        if obj is not None and session.connection().dialect.name == "sqlite":
            found[pk] = (snapshot(info, obj), obj)
        else:
            rest.append(pk)
    found.update((pk, (state, loaded.get(pk)))
                 for pk, (state, _n) in read_states(session, info, rest).items())
    return found
