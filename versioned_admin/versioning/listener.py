"""The session hooks: every flush of a versioned model writes its versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, scoped_session, sessionmaker
from sqlalchemy.orm import attributes as orm_attributes

from . import bulk, rows
from .changesets import UserCallable, ensure_changeset, transaction_ended
from .schema import ModelInfo, model_info
from .types import Operation, VersioningError
from .writer import changed_keys, pk_of, snapshot, version_row, write_shadow

_PLAN = "versioned_admin.plan"
REVERTS = "versioned_admin.reverts"


@dataclass
class _Plan:
    """Shadow versions to write once the flush has assigned primary keys."""

    changeset_ids: dict[int, int] = field(default_factory=dict)
    inserts: list[tuple[ModelInfo, object]] = field(default_factory=list)
    updates: list[tuple[ModelInfo, object, list[str]]] = field(default_factory=list)
    deletes: list[tuple[ModelInfo, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)


class _Hooks:
    """The listeners installed on one session target."""

    def __init__(self, user: UserCallable | None) -> None:
        self.user = user

    def changeset(self, session: Session, info: ModelInfo) -> int:
        """This transaction's changeset id for the model's metadata."""
        return ensure_changeset(session, info.changesets, self.user)

    def before_flush(self, session: Session, flush_context: Any, instances: Any) -> None:
        """Decide what this flush versions, and turn rows-strategy updates into inserts."""
        plan = _Plan()
        reverts: dict[Any, int] = session.info.get(REVERTS, {})
        rows_work = rows.RowsWork()
        for obj in list(session.deleted):
            info = model_info(obj)
            if info is None:
                continue
            if info.strategy == "rows":
                rows_work.deletes.append((info, obj))
                continue
            state = snapshot(info, obj)
            plan.deletes.append((info, pk_of(info, obj), state))
        for obj in list(session.dirty):
            info = model_info(obj)
            if info is None or obj in session.deleted:
                continue
            changed = changed_keys(info, obj)
            if not changed:
                continue
            if set(changed) & set(info.pk_keys):
                raise VersioningError(
                    f"{info.model.__name__}: changing the primary key of a versioned record "
                    "is not supported; delete it and insert a new one"
                )
            if info.strategy == "rows":
                rows_work.updates.append((info, obj, changed))
            else:
                plan.updates.append((info, obj, changed))
        for obj in list(session.new):
            info = model_info(obj)
            if info is None:
                continue
            if info.strategy == "rows":
                rows_work.inserts.append((info, obj))
            else:
                plan.inserts.append((info, obj))
        if rows_work:
            rows.apply(session, rows_work, self.changeset, reverts)
        if plan.inserts or plan.updates or plan.deletes:
            for info in {id(i): i for i, *_ in plan.inserts + plan.updates + plan.deletes}.values():
                plan.changeset_ids[id(info)] = self.changeset(session, info)
            session.info[_PLAN] = plan

    def after_flush(self, session: Session, flush_context: Any) -> None:
        """Write the planned shadow versions, one executemany per table."""
        plan: _Plan | None = session.info.pop(_PLAN, None)
        reverts: dict[Any, int] = session.info.pop(REVERTS, {})
        if plan is None:
            return
        batches: dict[int, tuple[ModelInfo, list[dict[str, Any]]]] = {}

        def add(info: ModelInfo, row: dict[str, Any]) -> None:
            batches.setdefault(id(info), (info, []))[1].append(row)

        for info, obj in plan.inserts:
            state = orm_attributes.instance_state(obj)
            add(
                info,
                version_row(
                    info,
                    pk_of(info, obj),
                    Operation.INSERT.value,
                    plan.changeset_ids[id(info)],
                    snapshot(info, obj),
                    None,
                    reverts.get(state),
                ),
            )
        for info, obj, changed in plan.updates:
            state = orm_attributes.instance_state(obj)
            add(
                info,
                version_row(
                    info,
                    pk_of(info, obj),
                    Operation.UPDATE.value,
                    plan.changeset_ids[id(info)],
                    snapshot(info, obj),
                    changed,
                    reverts.get(state),
                ),
            )
        for info, pk, snap in plan.deletes:
            add(
                info,
                version_row(info, pk, Operation.DELETE.value, plan.changeset_ids[id(info)], snap, []),
            )
        for info, rows_ in batches.values():
            write_shadow(session, info, rows_)

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        """Forget per-transaction state."""
        transaction_ended(session, transaction)
        if transaction.parent is None:
            session.info.pop(_PLAN, None)
            session.info.pop(REVERTS, None)

    def do_orm_execute(self, orm_execute_state: ORMExecuteState) -> Any:
        """Version (or refuse) bulk ORM UPDATE/DELETE/INSERT statements."""
        return bulk.handle(orm_execute_state, self.changeset)


_HOOKS: dict[Any, _Hooks] = {}
_EVENTS = ("before_flush", "after_flush", "after_transaction_end", "do_orm_execute")


def _resolve(target: Any) -> Any:
    if isinstance(target, scoped_session):
        return target.session_factory
    if isinstance(target, (sessionmaker, Session)) or (
        isinstance(target, type) and issubclass(target, Session)
    ):
        return target
    raise TypeError(f"cannot enable versioning on {target!r}: pass a Session class or sessionmaker")


def enable_versioning(target: Any, *, user: UserCallable | None = None) -> None:
    """Version every flush of sessions made by ``target`` (Session class, sessionmaker, scoped_session)."""
    key = _resolve(target)
    hooks = _HOOKS.get(key)
    if hooks is not None:
        if user is not None:
            hooks.user = user
        return
    hooks = _Hooks(user)
    for name in _EVENTS:
        event.listen(key, name, getattr(hooks, name))
    _HOOKS[key] = hooks


def disable_versioning(target: Any) -> None:
    """Remove the listeners ``enable_versioning`` installed on ``target``."""
    key = _resolve(target)
    hooks = _HOOKS.pop(key, None)
    if hooks is None:
        return
    for name in _EVENTS:
        event.remove(key, name, getattr(hooks, name))


def versioning_enabled(target: Any) -> bool:
    """True if ``enable_versioning`` is in force on ``target``."""
    return _resolve(target) in _HOOKS
