"""Temporal relations: a version's related records as they were then, and reverting them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import MANYTOONE

from .codec import decode
from .relations import CollectionSpec, target_pk
from .schema import ModelInfo, model_info, pk_in, require_info
from .storage import storage
from .types import Version, VersioningError


@dataclass(frozen=True)
class RelatedRecord:
    """A related record at a version; ``current`` marks today's state of an unversioned model."""

    model: type
    pk: tuple[Any, ...]
    state: dict[str, Any] | None  # None: the record did not exist then (or does not now)
    version: Version | None  # the related record's own version at that changeset
    current: bool


def _spec(info: ModelInfo, key: str) -> CollectionSpec:
    for spec in info.collections:
        if spec.key == key:
            return spec
    raise VersioningError(f"{info.model.__name__}.{key} is not a recorded collection")


def related_keys(version: Version, key: str) -> tuple[type, list[tuple[Any, ...]]]:
    """The related model and the primary keys ``version`` lists under relationship ``key``."""
    info = require_info(version.model)
    rel = info.mapper.relationships.get(key)
    if rel is not None and rel.direction is MANYTOONE:
        by_col = {col.name: k for k, col in info.fields}
        pairs = list(rel.local_remote_pairs or ())
        pk = tuple(version.state.get(by_col.get(local.name, ""), None) for local, _r in pairs)
        return rel.mapper.class_, [pk] if all(v is not None for v in pk) else []
    spec = _spec(info, key)
    if key not in version.state:
        raise VersioningError(f"version {version.number} predates the recording of {key!r}")
    cols = target_pk(spec.target)
    pks = []
    for item in version.state[key] or []:
        values = item if isinstance(item, list) else [item]
        pks.append(tuple(decode(v, c.type) for v, c in zip(values, cols, strict=True)))
    return spec.target.class_, pks


def related_as_of(session: Session, version: Version, key: str) -> list[RelatedRecord]:
    """The records ``version`` relates to under ``key``, each as it was at that changeset."""
    target, pks = related_keys(version, key)
    if not pks:
        return []
    tinfo = model_info(target)
    if tinfo is not None:
        return _versioned_as_of(session, tinfo, target, pks, version.changeset.id)
    cols = target_pk(require_mapper(target))
    where: Any = pk_in(cols, pks)
    live = {}
    obj: Any
    for obj in session.scalars(select(target).where(where)):
        state = {p.key: getattr(obj, p.key) for p in require_mapper(target).column_attrs}
        live[tuple(getattr(obj, p.key) for p in _pk_props(target))] = state
    return [RelatedRecord(target, pk, live.get(pk), None, current=True) for pk in pks]


def _versioned_as_of(session: Session, tinfo: ModelInfo, target: type,
                     pks: list[tuple[Any, ...]], cs_id: int) -> list[RelatedRecord]:
    """Versioned records as of a changeset: each one's newest version written by then."""
    st = storage(tinfo)
    history = st.history
    later = history.alias("later")
    newest = (
        select(func.max(later.c[st.number_name]))
        .where(*[later.c[c.name] == history.c[c.name] for c in tinfo.pk_columns],
               later.c.changeset_id <= cs_id)
        .scalar_subquery()
    )
    cols = [history.c[c.name] for c in tinfo.pk_columns]
    rows = session.execute(st.select().where(pk_in(cols, pks), st.number == newest)).all()
    found = {v.pk: v for v in (st.version(r) for r in rows)}
    out = []
    for pk in pks:
        v = found.get(pk)
        state = None if v is None or v.is_delete else v.state
        out.append(RelatedRecord(target, pk, state, v, current=False))
    return out


def require_mapper(model: type) -> Any:
    """The mapper of a mapped class."""
    from sqlalchemy import inspect

    return inspect(model)


def _pk_props(model: type) -> list[Any]:
    mapper = require_mapper(model)
    return [mapper.get_property_by_column(c) for c in target_pk(mapper)]


def revert_relations(session: Session, obj: object, version: Version,
                     relations: Sequence[str]) -> None:
    """Stage ``version``'s members of each listed collection on ``obj`` (deleted ones restored)."""
    from .records import get_live, restore

    info = require_info(obj)
    with session.no_autoflush:  # one flush, so one version, for the columns and the relations
        for key in relations:
            _revert_one(session, obj, info, version, key, restore, get_live)


def _revert_one(session: Session, obj: object, info: ModelInfo, version: Version, key: str,
                restore: Any, get_live: Any) -> None:
    spec = _spec(info, key)
    target, pks = related_keys(version, key)
    tinfo = model_info(target)
    members = []
    for pk in pks:
        if tinfo is not None:
            found = get_live(session, target, pk)  # a rows-strategy key names many rows
        else:
            found = session.get(target, pk[0] if len(pk) == 1 else pk)
        if found is None and tinfo is not None:
            found = restore(session, target, pk)
        if found is not None:
            members.append(found)
    factory: Any = spec.prop.collection_class
    setattr(obj, key, members if factory in (None, list) else factory(members))
