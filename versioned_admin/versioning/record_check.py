"""Check the recorded values of a flush's new and changed objects before anything is written."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, attributes

from .schema import ModelInfo, model_info
from .values_check import check_storable, is_json


def check_object(info: ModelInfo, obj: object) -> None:
    """Raise ``UnstorableValue`` if a new or changed recorded value of ``obj`` is unstorable.

    Persistent objects are checked only for the attributes set in this unit of work.
    """
    state = attributes.instance_state(obj)
    data = state.dict
    touched = state.committed_state if state.key is not None else None
    if touched is not None and not touched:
        return
    for key, column in info.fields:
        if touched is not None and key not in touched:
            continue
        value: Any = data.get(key)
        cls = value.__class__
        # str values are the common case: the JSON-type test only runs for the rest (a NUL
        # matters only in JSON, where jsonb refuses it)
        if cls is str and value.isascii() and "\x00" not in value or value is None or cls is bool:
            continue
        if cls is int and not is_json(column):
            continue
        check_storable(value, column=column, where=f"{info.model.__name__}.{key}")


def check_session(session: Session) -> None:
    """``check_object`` for every new or changed versioned object of a flush about to run."""
    deleted = session.deleted
    for group in (session.new, session.dirty):
        for obj in group:
            info = model_info(obj)
            if info is not None and obj not in deleted:
                check_object(info, obj)
