"""Turn column values into JSON-safe values and back, exactly.

Decoding is driven by the column's type, so the stored JSON needs no type tags.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import math
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.sql.sqltypes import _AbstractInterval  # Interval and PostgreSQL INTERVAL

_NATIVE = (str, int, float, bool, type(None))
# Exact classes that are their own JSON form (subclasses such as str enums are not).
PLAIN = frozenset({str, int, bool, type(None)})


def encode(value: Any) -> Any:
    """Return a JSON-safe representation of a column value."""
    if value.__class__ in PLAIN:
        return value  # the common case first: one set lookup instead of a chain of isinstance
    if isinstance(value, enum.Enum):
        # str/int enums by value (what a plain column stores), other enums by name (as Enum does)
        return value.value if isinstance(value, (str, int)) else value.name
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # PostgreSQL's json rejects NaN/Infinity tokens.
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return [value.days, value.seconds, value.microseconds]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        return _encode_json(value)
    return str(value)


_CONTAINERS = (dict, list, tuple)
# Exact classes a JSON value keeps as they are (str still needs its surrogate check).
_SAME = frozenset({int, bool, type(None)})


def _encode_json(value: Any) -> Any:
    """A JSON value's stored form, built without recursion (legacy values may nest deeply)."""
    if not isinstance(value, _CONTAINERS):
        return _json_scalar(value)
    root: list[Any] = [None]
    # (source container, target container, slot in target); scalars are done inline
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        source, target, slot = pop()
        out: Any
        if isinstance(source, dict):
            out = {}
            for k, v in source.items():
                key = k if k.__class__ is str and k.isascii() else safe_text(str(k))
                cls = v.__class__
                if cls in _SAME or cls is str and v.isascii():
                    out[key] = v
                elif isinstance(v, _CONTAINERS):
                    out[key] = None
                    push((v, out, key))
                else:
                    out[key] = _json_scalar(v)
        else:
            out = list(source)
            for i, v in enumerate(out):
                cls = v.__class__
                if cls in _SAME or cls is str and v.isascii():
                    continue
                if isinstance(v, _CONTAINERS):
                    push((v, out, i))
                else:
                    out[i] = _json_scalar(v)
        target[slot] = out
    return root[0]


def _json_scalar(value: Any) -> Any:
    if value.__class__ is str:
        return safe_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, _NATIVE):
        return value
    return encode(value)


def safe_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (pairs joined), so that it is UTF-8.

    New values with them are refused before a flush (``values_check``); this only keeps a
    value stored before that check (a record's last state when it is deleted) writable.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # through UTF-16: a split pair becomes its character, a lone half one U+FFFD
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _base_type(type_: sqltypes.TypeEngine[Any]) -> sqltypes.TypeEngine[Any]:
    # Interval is itself a TypeDecorator (over DateTime): keep it.
    while isinstance(type_, sqltypes.TypeDecorator) and not isinstance(type_, sqltypes.Interval):
        type_ = type_.impl_instance
    return type_


def _enum_member(enum_class: type[enum.Enum], value: Any) -> Any:
    """The member stored as ``value``: by value for str/int enums, else by name."""
    by_value = issubclass(enum_class, (str, int))
    for by_val in (by_value, not by_value):
        try:
            return enum_class(value) if by_val else enum_class[value]
        except (KeyError, ValueError, TypeError):
            continue
    return value


def decode(value: Any, type_: sqltypes.TypeEngine[Any]) -> Any:
    """Return the Python value a column of ``type_`` holds for a stored JSON value.

    A stored value that does not fit the type (written by hand, or by an older version) is
    returned as stored rather than raising: history pages must open whatever is there.
    """
    if value is None:
        return None
    try:
        return _decode(value, type_)
    except (ValueError, TypeError, OverflowError, ArithmeticError):  # binascii.Error too
        return value


def _decode(value: Any, type_: sqltypes.TypeEngine[Any]) -> Any:
    base = _base_type(type_)
    if isinstance(base, sqltypes.Enum):
        enum_class = getattr(base, "enum_class", None)
        if enum_class is not None:
            return _enum_member(enum_class, value)
        return value
    if isinstance(base, sqltypes.JSON):
        return value
    if isinstance(base, sqltypes._Binary):
        return base64.b64decode(value) if isinstance(value, str) else value
    if isinstance(base, sqltypes.DateTime):
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(base, sqltypes.Date):
        return dt.date.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(base, sqltypes.Time):
        return dt.time.fromisoformat(value) if isinstance(value, str) else value
    if isinstance(base, (sqltypes.Interval, _AbstractInterval)):
        if isinstance(value, list) and len(value) == 3:
            return dt.timedelta(days=value[0], seconds=value[1], microseconds=value[2])
        return value
    if isinstance(base, sqltypes.Float):
        return Decimal(str(value)) if base.asdecimal else float(value)
    if isinstance(base, sqltypes.Numeric):
        return Decimal(value) if base.asdecimal else float(value)
    if isinstance(base, sqltypes.Boolean):
        return bool(value)
    if isinstance(base, sqltypes.Integer):
        return int(value)
    if isinstance(base, sqltypes.Uuid):
        return uuid.UUID(value) if base.as_uuid and isinstance(value, str) else value
    return value
