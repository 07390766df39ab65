"""Reading versioned maps as stored: any version's entries, the latest one, one key's history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.orm import Session

from .history import normalize_pk
from .map_schema import DELETED, MapSpec, Typed, value_of
from .schema import ModelInfo, require_info
from .types import Changeset, VersioningError

Entries = dict[str, tuple[int, Typed]]  # key -> (value_id, typed value)


@dataclass(frozen=True)
class MapValue:
    """One value a key was given: which version set it, and the changeset (who/when)."""

    key: str
    value: Any
    version: int
    changeset: Changeset
    deleted: bool = False


def map_spec(info: ModelInfo, name: str | None) -> MapSpec:
    """The map ``name`` of a model; ``None`` if it has exactly one."""
    if name is None:
        if len(info.maps) != 1:
            raise VersioningError(f"{info.model.__name__}: name the map (one of {list(info.maps)})")
        return next(iter(info.maps.values()))
    if name not in info.maps:
        raise VersioningError(f"{info.model.__name__} has no versioned map {name!r}")
    spec: MapSpec = info.maps[name]
    return spec


def read_entries(session: Session, spec: MapSpec, pairs: list[tuple[Any, ...]]
                 ) -> dict[tuple[Any, ...], Entries]:
    """(pk…, version) -> the entries of that version, in one SELECT."""
    found: dict[tuple[Any, ...], Entries] = {p: {} for p in pairs}
    if not pairs:
        return found
    e, v = spec.entries, spec.values
    cols = [e.c[n] for n in spec.parent_cols] + [e.c.version]
    stmt = select(*cols, v).join(v, v.c.value_id == e.c.value_id).where(tuple_(*cols).in_(pairs))
    for row in session.connection().execute(stmt):
        found[tuple(row[: len(cols)])][row.key] = (int(row.value_id), value_of(row))
    return found


def latest_entries(session: Session, info: ModelInfo, spec: MapSpec,
                   pk: tuple[Any, ...]) -> dict[str, Typed]:
    """The map as the record's latest stored version has it (one SELECT; empty if none)."""
    e, v, vt = spec.entries, spec.values, info.version_table
    assert vt is not None  # maps need the shadow strategy
    latest = (
        select(func.max(vt.c.version))
        .where(*[vt.c[c.name] == x for c, x in zip(info.pk_columns, pk, strict=True)])
        .scalar_subquery()
    )
    stmt = (
        select(v)
        .join(e, e.c.value_id == v.c.value_id)
        .where(*[e.c[n] == x for n, x in zip(spec.parent_cols, pk, strict=True)],
               e.c.version == latest)
    )
    return {row.key: value_of(row) for row in session.connection().execute(stmt)}


def map_at(session: Session, model: type, pk: Any, number: int, *,
           name: str | None = None) -> dict[str, Any]:
    """The map as it was at the record's version ``number`` (one query)."""
    info = require_info(model)
    key = normalize_pk(info, pk)
    got = read_entries(session, map_spec(info, name), [(*key, number)])[(*key, number)]
    return {k: v for k, (_id, (_kind, v)) in sorted(got.items())}


def key_history(session: Session, model: type, pk: Any, key: str, *,
                name: str | None = None) -> list[MapValue]:
    """Every value ``key`` was given, oldest first, with its version and changeset (one query)."""
    info = require_info(model)
    spec = map_spec(info, name)
    ident = normalize_pk(info, pk)
    v, cs = spec.values, info.changesets
    rows = session.execute(
        select(v, cs.c.id.label("cs_id"), cs.c.issued_at.label("cs_issued_at"),
               cs.c.user.label("cs_user"), cs.c.reason.label("cs_reason"))
        .join(cs, cs.c.id == v.c.changeset_id)
        .where(and_(*[v.c[n] == x for n, x in zip(spec.parent_cols, ident, strict=True)]),
               v.c.key == key)
        .order_by(v.c.version)
    ).all()
    return [
        MapValue(key=key, value=value_of(r)[1], version=int(r.version),
                 changeset=Changeset(id=int(r.cs_id), issued_at=r.cs_issued_at, user=r.cs_user,
                                     reason=r.cs_reason),
                 deleted=r.kind == DELETED)
        for r in rows
    ]
