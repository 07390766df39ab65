"""The session hooks: every flush of a versioned model writes its versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    scoped_session,
    sessionmaker,
)
from sqlalchemy.orm import attributes as orm_attributes
from sqlalchemy.orm.base import PASSIVE_NO_INITIALIZE

from . import bulk, maps, relations, row_keys, rows, rows_collections
from .changesets import (
    UserCallable,
    ensure_changeset,
    transaction_created,
    transaction_ended,
    transaction_rolled_back,
)
from .guard import EXPECT, check_expectations
from .legacy import guard_legacy_bulk, unguard_legacy_bulk
from .record_check import check_session
from .schema import ModelInfo, model_info
from .types import Operation, VersioningError
from .writer import (
    FRESH,
    NUMBER,
    changed_keys,
    generated_key,
    own_row,
    pk_of,
    read_for_delete,
    read_states,
    snapshot,
    stored_snapshot,
    write_shadow,
)

_PLAN = "versioned_admin.plan"
_FRESH = "versioned_admin.fresh"
REVERTS = "versioned_admin.reverts"
_T = TypeVar("_T")


@dataclass
class _Plan:
    """What before_flush saw: deletes (snapshotted before the rows go away)."""

    # (model, key, the stored row's state, the record's latest version number)
    deletes: list[tuple[ModelInfo, tuple[Any, ...], dict[str, Any], int]] = field(
        default_factory=list)


def _delete_orphans(session: Session) -> None:
    """Mark versioned delete-orphans as deleted now, so their delete is versioned too."""
    deleted = session.deleted  # a new set per access: built once, not once per object
    for obj in list(session.dirty):
        state = orm_attributes.instance_state(obj)
        candidates = [obj]
        for rel in state.mapper.relationships:
            if rel.cascade.delete_orphan:
                hist = orm_attributes.get_history(
                    obj, rel.key, passive=PASSIVE_NO_INITIALIZE
                )
                candidates.extend(hist.deleted or ())
        for child in candidates:
            if child is None or model_info(child) is None or child in deleted:
                continue
            child_state = orm_attributes.instance_state(child)
            if child_state.has_identity and child_state.mapper._is_orphan(child_state):
                session.delete(child)
                deleted.add(child)


def _by_model(items: list[tuple[ModelInfo, _T]]) -> dict[ModelInfo, list[_T]]:
    """Items grouped by model, in order."""
    found: dict[ModelInfo, list[_T]] = {}
    for info, item in items:
        found.setdefault(info, []).append(item)
    return found


def _check_pk_unchanged(info: ModelInfo, obj: object) -> None:
    touched = orm_attributes.instance_state(obj).committed_state
    if touched and any(k in touched for k in info.pk_keys) and any(
        k in info.pk_keys for k in changed_keys(info, obj)
    ):
        raise VersioningError(
            f"{info.model.__name__}: changing the primary key of a versioned record "
            "is not supported; delete it and insert a new one"
        )


class _Hooks:
    """The listeners installed on one session target."""

    def __init__(self, user: UserCallable | None) -> None:
        self.user = user

    def changeset(self, session: Session, info: ModelInfo) -> int:
        """This transaction's changeset id for the model's metadata."""
        return ensure_changeset(session, info.changesets, self.user)

    def before_flush(self, session: Session, flush_context: Any, instances: Any) -> None:
        """Snapshot deletes, refuse key changes, turn rows-strategy updates into inserts."""
        session.info.pop(_PLAN, None)  # a failed flush's plan must never be written later
        check_session(session)  # refuse values that would not read back exactly, before any write
        plan = _Plan()
        if session.connection().dialect.name != "sqlite":
            # SQLite may hand a deleted record's rowid to a new one; sequences never do.
            session.info[_FRESH] = {
                orm_attributes.instance_state(obj)
                for obj in session.new
                if (info := model_info(obj)) is not None
                and info.strategy == "shadow"
                and generated_key(info, obj)
            }
        reverts: dict[Any, int] = session.info.get(REVERTS, {})
        rows_work = rows.RowsWork()
        _delete_orphans(session)
        shadow_deletes: list[tuple[ModelInfo, object]] = []
        for obj in list(session.deleted):
            info = model_info(obj)
            if info is None:
                continue
            if info.strategy == "rows":
                rows_work.deletes.append((info, obj))
            else:
                shadow_deletes.append((info, obj))
        for info, group in _by_model(shadow_deletes).items():
            # The row as the database holds it, locked until the DELETE: the instance may be
            # stale or carry unsaved edits. A row someone else deleted first is not ours to
            # record (the DELETE will match nothing).
            for pk, (state, number) in read_for_delete(session, info, group).items():
                plan.deletes.append((info, pk, state, number))
        deleted = session.deleted
        for obj in list(session.dirty):
            info = model_info(obj)
            if info is None or obj in deleted:
                continue
            _check_pk_unchanged(info, obj)
            if info.strategy == "rows":
                changed = changed_keys(info, obj) + rows.relation_changes(info, obj)
                if changed:
                    rows_work.updates.append((info, obj, changed))
        for obj in list(session.new):
            info = model_info(obj)
            if info is not None and info.strategy == "rows":
                rows_work.inserts.append((info, obj))
        if rows_work.inserts:
            row_keys.allocate(session, rows_work.inserts, self.changeset)
        rows_collections.add_changed_parents(session, rows_work)
        if rows_work:
            rows.apply(session, rows_work, self.changeset, reverts)
        check_expectations(session, "rows")
        if plan.deletes:
            session.info[_PLAN] = plan

    def after_flush(self, session: Session, flush_context: Any) -> None:
        """Write shadow versions, one executemany per table."""
        # Inserts and updates are read here, not in before_flush, so that foreign keys the
        # flush itself sets (relationship changes) are part of the state and of ``changed``.
        plan: _Plan = session.info.pop(_PLAN, None) or _Plan()
        # After the UPDATEs: their row locks make this check and the write one atomic step.
        check_expectations(session, "shadow")
        reverts: dict[Any, int] = session.info.pop(REVERTS, {})
        batches: dict[int, tuple[ModelInfo, list[dict[str, Any]]]] = {}
        objects: dict[tuple[int, tuple[Any, ...]], object] = {}

        changesets: dict[int, int] = {}  # asked once per model, not once per row

        def add(
            info: ModelInfo,
            pk: tuple[Any, ...],
            op: Operation,
            state: dict[str, Any],
            changed: list[str] | None,
            obj: object | None = None,
        ) -> None:
            reverted = None
            if reverts and obj is not None:
                reverted = reverts.get(orm_attributes.instance_state(obj))
            cs_id = changesets.get(id(info))
            if cs_id is None:
                cs_id = changesets[id(info)] = self.changeset(session, info)
            # The state dicts here are built for this row alone: no copy (version_row makes one).
            row = own_row(info, pk, op.value, cs_id, state, changed, reverted)
            batch = batches.get(id(info))
            if batch is None:
                batch = batches[id(info)] = (info, [])
            batch[1].append(row)
            if obj is not None:
                objects[(id(info), pk)] = obj

        # Deletes first: a key deleted and added again in one flush (SQLAlchemy turns the
        # pair into an UPDATE) is then a delete followed by an insert, as the row now is.
        for d_info, d_pk, snap, number in plan.deletes:
            add(d_info, d_pk, Operation.DELETE, snap, [])
            batches[id(d_info)][1][-1][NUMBER] = number + 1  # known: no lookup
        fresh_keys: set[Any] = session.info.pop(_FRESH, None) or set()
        switched = {(id(d_info), d_pk) for d_info, d_pk, _s, _n in plan.deletes}
        dialect = session.connection().dialect
        for obj in session.new:
            info = model_info(obj)
            if info is not None and info.strategy == "shadow":
                pk = pk_of(info, obj)
                if (id(info), pk) in switched:
                    # SQLAlchemy wrote it as an UPDATE of the deleted row, which keeps that
                    # row's values in columns the new object did not set: read what is there.
                    found = read_states(session, info, [pk]).get(pk)
                    state = found[0] if found else snapshot(info, obj)
                    add(info, pk, Operation.INSERT, state, None, obj)
                    continue
                add(info, pk, Operation.INSERT, stored_snapshot(info, obj, dialect), None, obj)
                if orm_attributes.instance_state(obj) in fresh_keys:
                    batches[id(info)][1][-1][FRESH] = True
        updates: list[tuple[ModelInfo, object, list[str]]] = []
        deleted = session.deleted
        for obj in session.dirty:
            info = model_info(obj)
            if info is None or info.strategy != "shadow" or obj in deleted:
                continue
            changed = changed_keys(info, obj)
            if info.maps:
                changed += maps.changed_maps(info, obj)
            if changed:
                _check_pk_unchanged(info, obj)
                updates.append((info, obj, changed))
        # The version holds the row as the database now has it, read back after the UPDATE
        # (under its row lock): another session may have changed other columns since this
        # one loaded the object, on SQLite too, and onupdate= values are only there.
        if updates:
            by_model = _by_model([(info, (obj, changed)) for info, obj, changed in updates])
            for info, group in by_model.items():
                pks = [pk_of(info, obj) for obj, _c in group]
                fresh = read_states(session, info, pks)
                for pk, (obj, changed) in zip(pks, group, strict=True):
                    found = fresh.get(pk)
                    state = found[0] if found else snapshot(info, obj)
                    add(info, pk, Operation.UPDATE, state, changed, obj)
                    if found:
                        batches[id(info)][1][-1][NUMBER] = found[1] + 1
        relations.extend(session, batches, objects, self.changeset, reverts)
        for info, rows_ in batches.values():
            if not info.maps:
                write_shadow(session, info, rows_)
                continue
            names = [f"pk_{c.name}" for c in info.pk_columns]
            keys = [tuple(r[n] for n in names) for r in rows_]
            write_shadow(session, info, rows_)
            # A delete's map is the one before it (a key added again is another object).
            written = [(pk, None if r["operation"] == "delete" else objects.get((id(info), pk)))
                       for pk, r in zip(keys, rows_, strict=True)]
            maps.write_maps(session, info, written, self.changeset(session, info))

    def after_transaction_create(self, session: Session, transaction: SessionTransaction) -> None:
        """Remember what a savepoint may have to put back."""
        transaction_created(session, transaction)

    def after_rollback(self, session: Session) -> None:
        """Forget the changeset of the transaction or savepoint that was rolled back."""
        transaction_rolled_back(session)

    def after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        """Forget per-transaction state."""
        transaction_ended(session, transaction)
        rows.transaction_ended(session, transaction)
        if transaction.parent is None:
            session.info.pop(_PLAN, None)
            session.info.pop(REVERTS, None)
            session.info.pop(EXPECT, None)

    def do_orm_execute(self, orm_execute_state: ORMExecuteState) -> Any:
        """Version (or refuse) bulk ORM UPDATE/DELETE/INSERT statements."""
        return bulk.handle(orm_execute_state, self.changeset)


_EVENTS = (
    "before_flush",
    "after_flush",
    "after_transaction_create",
    "after_rollback",
    "after_transaction_end",
    "do_orm_execute",
)
# The hooks live on the session factory they serve (no registry in this module), so any
# number of factories, apps and admins can share a process.
_HOOKS_ATTR = "_versioned_admin_hooks"


def _resolve(target: Any) -> Any:
    if isinstance(target, scoped_session):
        return target.session_factory
    if isinstance(target, (sessionmaker, Session)) or (
        isinstance(target, type) and issubclass(target, Session)
    ):
        return target
    raise TypeError(f"cannot enable versioning on {target!r}: pass a Session class or sessionmaker")


def _hooks_of(key: Any) -> _Hooks | None:
    # vars(): a subclass of a versioned Session class is a factory of its own.
    hooks = vars(key).get(_HOOKS_ATTR)
    return hooks if isinstance(hooks, _Hooks) else None


def enable_versioning(target: Any, *, user: UserCallable | None = None) -> None:
    """Version every flush of sessions made by a Session class, sessionmaker or scoped_session.

    ``user`` names the acting user of changesets whose session has no ``set_user_source``
    or ``set_user``; enabling again on the same factory replaces it.
    """
    key = _resolve(target)
    hooks = _hooks_of(key)
    if hooks is not None:
        if user is not None:
            hooks.user = user
        return
    hooks = _Hooks(user)
    for name in _EVENTS:
        event.listen(key, name, getattr(hooks, name))
    guard_legacy_bulk(key)
    setattr(key, _HOOKS_ATTR, hooks)


def disable_versioning(target: Any) -> None:
    """Remove the listeners ``enable_versioning`` installed on ``target``."""
    key = _resolve(target)
    hooks = _hooks_of(key)
    if hooks is None:
        return
    delattr(key, _HOOKS_ATTR)
    for name in _EVENTS:
        event.remove(key, name, getattr(hooks, name))
    unguard_legacy_bulk(key)


def versioning_enabled(target: Any) -> bool:
    """True if ``enable_versioning`` is in force on ``target``."""
    return _hooks_of(_resolve(target)) is not None
