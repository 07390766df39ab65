"""Refuse the legacy bulk methods, which fire no session events, on versioned models."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from .schema import model_info, registered
from .types import UnversionedWriteError

_METHODS = ("bulk_save_objects", "bulk_insert_mappings", "bulk_update_mappings")
_MARK = "_versioned_admin_guard"


def _model_of(target: Any) -> type | None:
    if isinstance(target, type):
        return target
    try:
        return inspect(target).class_
    except Exception:  # noqa: BLE001 - not a mapper or mapped class: nothing to guard
        return None


def _refuse(name: str, models: Iterable[type | None]) -> None:
    for model in models:
        if model is None:
            continue
        if model_info(model) is not None:
            raise UnversionedWriteError(
                f"Session.{name}() on {model.__name__} would write without versions (it fires "
                "no session events): use session.add_all() or session.execute(insert(...)) "
                "with primary keys instead"
            )
        owner = _collection_owner(model)
        if owner is not None:
            raise UnversionedWriteError(
                f"Session.{name}() on {model.__name__} would change the versioned collection "
                f"{owner} without a version (it fires no session events): use "
                "session.add_all() or session.execute(insert(...)/update(...)) instead"
            )


def _collection_owner(model: type) -> str | None:
    """``Parent.key`` of a versioned collection whose rows ``model`` holds, if any."""
    for info in registered():
        for spec in info.collections:
            if spec.secondary is None and issubclass(model, spec.target.class_):
                return f"{info.model.__name__}.{spec.key}"
    return None


def _guarded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def method(self: Session, first: Any, *args: Any, **kw: Any) -> Any:
        if name == "bulk_save_objects":
            first = list(first)
            _refuse(name, {type(obj) for obj in first})
        else:
            _refuse(name, [_model_of(first)])
        return original(self, first, *args, **kw)

    setattr(method, _MARK, original)
    return method


def _owner(target: Any) -> Any:
    """Where to install the guard: the sessionmaker's own class, a Session class or instance."""
    return getattr(target, "class_", target)


def guard_legacy_bulk(target: Any) -> None:
    """Make the legacy bulk methods of sessions made by ``target`` refuse versioned models."""
    owner = _owner(target)
    for name in _METHODS:
        current = getattr(owner, name)
        if getattr(current, _MARK, None) is None:
            guarded = _guarded(name, current)
            if isinstance(owner, Session):
                setattr(owner, name, guarded.__get__(owner))
            else:
                setattr(owner, name, guarded)


def unguard_legacy_bulk(target: Any) -> None:
    """Undo ``guard_legacy_bulk``."""
    owner = _owner(target)
    for name in _METHODS:
        vars_ = vars(owner)
        if name in vars_ and getattr(vars_[name], _MARK, None) is not None:
            delattr(owner, name)
