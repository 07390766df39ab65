"""Live records, revert and restore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session, attributes

from .history import get_version, latest_version, normalize_pk
from .listener import REVERTS
from .maps import map_at
from .schema import require_info
from .storage import storage
from .types import NotDeleted, Operation, VersioningError, VersionNotFound
from .writer import pk_of


def record_pk(obj: object) -> tuple[Any, ...]:
    """The record's logical primary key (rows strategy: without version_id)."""
    return pk_of(require_info(obj), obj)


def record_pk_columns(model: type) -> list[Any]:
    """The live table columns that identify a record."""
    return require_info(model).pk_columns


def live_filter(model: type) -> ColumnElement[bool] | None:
    """The WHERE clause that keeps only live rows, or None when every row is live."""
    return storage(require_info(model)).live_filter()


def live_select(model: type) -> Select[Any]:
    """``select(model)`` limited to live rows."""
    stmt: Select[Any] = select(model)
    where = live_filter(model)
    return stmt if where is None else stmt.where(where)


def get_live(session: Session, model: type, pk: Any) -> Any:
    """The live row of a record, or None if it does not exist (or is deleted)."""
    info = require_info(model)
    return storage(info).get_live(session, normalize_pk(info, pk))


def _mark_revert(session: Session, obj: object, number: int) -> None:
    session.info.setdefault(REVERTS, {})[attributes.instance_state(obj)] = number


def revert(
    session: Session, target: Any, number: int, *, pk: Any = None, relations: Sequence[str] = ()
) -> Any:
    """Stage version ``number``'s state on a record; the next flush writes it as a new version.

    ``target`` is a live instance, or a model class with ``pk=``. A deleted record is restored.
    ``relations`` names collections to take back to that version too (same changeset).
    """
    if isinstance(target, type):
        model, obj = target, get_live(session, target, pk)
        key = pk
    else:
        model, obj, key = type(target), target, record_pk(target)
    version = get_version(session, model, key, number)
    if version.operation is Operation.DELETE:
        raise VersioningError(
            f"version {number} records a deletion; revert to a version before it, or restore"
        )
    if obj is None:
        # The version's own class (a subclass, when asked through its base).
        obj = _readd(session, version.model, version.state, version.number)
        for name in require_info(obj).maps:  # version N's map, not the one before the delete
            setattr(obj, name, map_at(session, model, key, number, name=name))
        _revert_relations(session, obj, version, relations)
        return obj
    info = require_info(obj)
    if version.model is not info.model:
        raise VersioningError(
            f"version {number} is a {version.model.__name__}, the record is now a "
            f"{info.model.__name__}: a record cannot change its class by a revert"
        )
    for field_key, _col in info.fields:
        if field_key in info.pk_keys or field_key not in version.state:
            continue
        setattr(obj, field_key, version.state[field_key])
    for name in info.maps:
        setattr(obj, name, map_at(session, model, key, number, name=name))
    _mark_revert(session, obj, number)
    _revert_relations(session, obj, version, relations)
    return obj


def _revert_relations(
    session: Session, obj: object, version: Any, relations: Sequence[str]
) -> None:
    if relations:
        from .temporal import revert_relations

        revert_relations(session, obj, version, relations)


def restore(session: Session, model: type, pk: Any) -> Any:
    """Bring back a deleted record with its last state and primary key, as a new version."""
    info = require_info(model)
    key = normalize_pk(info, pk)
    last = latest_version(session, model, key)
    if last is None:
        raise VersionNotFound(f"{model.__name__} {key!r} has no history")
    if last.operation is not Operation.DELETE or get_live(session, model, key) is not None:
        raise NotDeleted(f"{model.__name__} {key!r} is not deleted")
    # The deleted record's own class: a subclass, when asked through its base.
    obj = _readd(session, last.model, last.state, last.number - 1 if last.number > 1 else None)
    info = require_info(obj)
    if not storage(info).keeps_links:
        # The tombstone keeps the lists the record had: bring its collections back too.
        _revert_relations(session, obj, last,
                          [spec.key for spec in info.collections if spec.key in last.state])
    return obj


def _readd(session: Session, model: type, state: dict[str, Any], source: int | None) -> Any:
    info = require_info(model)
    obj = model()
    for field_key, _col in info.fields:
        if field_key in state:
            setattr(obj, field_key, state[field_key])
    session.add(obj)
    if source is not None:
        _mark_revert(session, obj, source)
    return obj
