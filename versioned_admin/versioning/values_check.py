"""Refuse values that the live row and its version would not both store and read back exactly.

Checked before anything is written, so a refused value leaves no live row, version or changeset
behind. The rules are the same on every backend, so data that saves on SQLite saves on
PostgreSQL too (and the reverse):

- text (str columns, JSON strings and keys, map keys and values) must be valid Unicode: a lone
  surrogate such as ``"\\ud83d"`` cannot be encoded as UTF-8;
- JSON values hold only dicts with str keys (``{1: "a"}`` would read back as ``{"1": "a"}``),
  lists (tuples read back as lists), str, int, float, bool and None, nested at most
  ``MAX_JSON_DEPTH`` containers deep, and no NaN or infinity (not JSON);
- JSON integers fit 64 bits: SQLite stores a bare JSON number beyond that as a float, map
  integers are ``BIGINT``, and many JSON readers lose such digits;
- in a model's JSON column (kept in the version's state, ``jsonb`` on PostgreSQL) floats are
  below ``FLOAT_LIMIT`` in magnitude and not ``-0.0``, and strings have no NUL: ``jsonb``
  reads ``1e16`` back as the integer ``10000000000000000``, ``-0.0`` as ``0.0`` and refuses
  ``\\u0000``; and a column holding just a whole-number float (``1.0``) reads back from
  SQLite as the integer ``1``.

Map floats are finite and not ``-0.0`` (SQLite reads it back as ``0.0``). Float columns are
not checked: infinities round-trip (the state holds ``"inf"``, decoded by the column type).

This module needs nothing of the engine but its errors, so that the map and schema modules can
use it; ``record_check`` applies it to the objects of a flush.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column
from sqlalchemy import types as sqltypes

from .types import VersioningError

#: JSON containers (dicts, lists) nested deeper than this are refused: the diff and revert of
#: a value must not depend on Python's recursion limit, and no real document needs more.
MAX_JSON_DEPTH = 64
#: JSON integers must lie in this range (64-bit, as SQLite and ``BIGINT`` store them).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: JSON floats must be smaller than this in magnitude (``jsonb`` turns larger ones into ints).
FLOAT_LIMIT = 1e16


class UnstorableValue(VersioningError, ValueError):
    """A value that would not be stored and read back exactly; nothing was written."""


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a lone surrogate), or None if it can."""
    if text.isascii():
        return None  # the usual case: one C-speed scan
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        return f"contains a lone surrogate (U+{char:04X}), which is not valid Unicode"
    return None


def _float_problem(value: float, column: bool, bare: bool) -> str | None:
    if not math.isfinite(value):
        return f"{value!r} is not a number JSON can hold"
    if not column:
        return None  # a map's JSON column keeps the text as written
    if abs(value) >= FLOAT_LIMIT:
        return (f"the float {value!r} would read back as an integer (PostgreSQL jsonb); "
                "store it as an integer or a string")
    if value == 0.0 and math.copysign(1.0, value) < 0:
        return "-0.0 would read back as 0.0 (PostgreSQL jsonb); store 0.0"
    if bare and value.is_integer():
        return (f"a JSON value that is just the float {value!r} reads back as the integer "
                f"{int(value)} (SQLite); store {int(value)}, or put it in a list or object")
    return None


_NUL = "contains a NUL character (\\u0000), which PostgreSQL's jsonb refuses"


def _scalar_problem(value: Any, column: bool, bare: bool) -> str | None:
    """Why a JSON scalar cannot be stored, or None (for a value that is no container)."""
    if isinstance(value, str):
        return _NUL if column and "\x00" in value else text_problem(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None
        # huge ints are not even printed (str() refuses beyond 4,300 digits)
        bits = value.bit_length()
        what = f"the integer {value}" if bits <= 256 else f"an integer of {bits:,} bits"
        return f"{what} does not fit 64 bits; store it as a string"
    if isinstance(value, float):
        return _float_problem(value, column, bare)
    return (f"{type(value).__name__} is not a JSON type (use dicts with str keys, lists, "
            "str, int, float, bool and None)")


def _key_problem(key: Any, column: bool) -> str | None:
    if not isinstance(key, str):
        return (f"has the key {key!r}, which is not a string (JSON keys are strings: it would "
                f"read back as {str(key)!r})")
    problem = _NUL if column and "\x00" in key else text_problem(key)
    return f"has a key that {problem}" if problem else None


def _bad(value: Any, max_depth: int, column: bool) -> bool:
    """True if anything in ``value`` is unstorable; iterative, so no depth can overflow it."""
    if not isinstance(value, (dict, list, tuple)):
        return _scalar_problem(value, column, True) is not None
    # Only containers go on the stack; scalars are checked inline (most of a document).
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, level = pop()
        if level >= max_depth:
            return True
        if isinstance(item, dict):
            for key in item:
                if key.__class__ is not str or not key.isascii() or "\x00" in key:
                    if _key_problem(key, column):
                        return True
            item = item.values()
        for child in item:
            cls = child.__class__
            if cls is str:
                if (not child.isascii() or "\x00" in child) and (
                        _scalar_problem(child, column, False)):
                    return True
            elif cls is int:
                if not INT_MIN <= child <= INT_MAX:
                    return True
            elif cls is dict or cls is list or cls is tuple:
                push((child, level + 1))
            elif child is None or cls is bool:
                continue
            elif cls is float:
                if _float_problem(child, column, False):
                    return True
            elif isinstance(child, (dict, list, tuple)):  # MutableDict, OrderedDict...
                push((child, level + 1))
            elif _scalar_problem(child, column, False):
                return True
    return False


def _explain(value: Any, path: str, depth: int, max_depth: int,
             column: bool) -> tuple[str, str] | None:
    """(path, problem) of the first unstorable part of ``value``; the recursion is bounded by
    ``max_depth`` because it stops at the first container past the limit."""
    if isinstance(value, (dict, list, tuple)) and depth >= max_depth:
        return path or "$", f"is nested deeper than {max_depth} levels"
    if isinstance(value, dict):
        for key, child in value.items():
            problem = _key_problem(key, column)
            if problem:
                return f"{path or '$'}[{key!r}]", problem
            found = _explain(child, f"{path or '$'}[{key!r}]", depth + 1, max_depth, column)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            found = _explain(child, f"{path or '$'}[{i}]", depth + 1, max_depth, column)
            if found:
                return found
        return None
    problem = _scalar_problem(value, column, depth == 0)
    return (path or "$", problem) if problem else None


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH, column: bool = True
                 ) -> str | None:
    """Why a JSON value cannot be stored exactly ("at $['a'][0]: ..."), or None if it can.

    ``column`` is False for a versioned map's JSON value: it is kept as written (PostgreSQL
    ``json``), never in a version's ``jsonb`` state, so the float and NUL rules that come from
    ``jsonb`` do not apply to it.
    """
    if not _bad(value, max_depth, column):
        return None
    found = _explain(value, "", 0, max_depth, column)
    if found is None:  # pragma: no cover - the two walks agree
        return "cannot be stored exactly"
    path, problem = found
    if path == "$":
        return problem
    path = _printable(path)
    if len(path) > 80:  # e.g. 65 levels of [0]
        path = path[:50] + "…" + path[-25:]
    return f"at {path}: {problem}"


def _printable(text: str) -> str:
    """``text`` with lone surrogates escaped, so the message itself can be shown and logged."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_json(column: Column[Any]) -> bool:
    """True for a column whose type is JSON (also under a TypeDecorator)."""
    type_ = column.type
    while isinstance(type_, sqltypes.TypeDecorator):
        type_ = type_.impl_instance
    return isinstance(type_, sqltypes.JSON)


def check_storable(value: Any, *, column: Column[Any], where: str | None = None) -> None:
    """Raise ``UnstorableValue`` if ``value`` for ``column`` would not read back exactly."""
    if value is None:
        return
    if is_json(column):
        problem = json_problem(value)
    elif isinstance(value, str):
        problem = text_problem(value)
    else:
        return
    if problem:
        if where is None:
            where = column.name if column.table is None else f"{column.table.name}.{column.name}"
        raise UnstorableValue(f"{where}: this value cannot be stored exactly: {problem}")


def check_map_key(key: str) -> None:
    """Raise ``UnstorableValue`` for a versioned map key that is not valid Unicode."""
    problem = text_problem(key) if isinstance(key, str) else None
    if problem:
        raise UnstorableValue(f"versioned map key {_printable(repr(key))} {problem}")


def map_value_problem(value: Any) -> str | None:
    """Why a versioned map value would not read back exactly, or None if it would."""
    cls = value.__class__
    if value is None or cls is bool:
        return None
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, int):
        return _scalar_problem(value, False, False)  # map ints are BIGINT: 64 bits, as in JSON
    if isinstance(value, float):
        # a double precision column: any finite float but -0.0 (SQLite reads back 0.0)
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return "-0.0 would read back as 0.0 (SQLite); store 0.0"
        return None
    if isinstance(value, (dict, list, tuple)):
        return json_problem(value, column=False)
    return None  # other types: typed() refuses them with its own TypeError


def check_map_value(value: Any) -> None:
    """Raise ``UnstorableValue`` for a versioned map value that would not read back exactly."""
    problem = map_value_problem(value)
    if problem:
        raise UnstorableValue(f"versioned map value cannot be stored exactly: {problem}")


def check_map(data: Mapping[str, Any]) -> None:
    """``check_map_key`` and ``check_map_value`` for every item, before a map is changed."""
    for key, value in data.items():
        check_map_key(key)
        check_map_value(value)
