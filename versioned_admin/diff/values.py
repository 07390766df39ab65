"""Field-by-field diffs of record states, JSON diffs by key, and one-line display of values."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from time import perf_counter
from typing import Any

from .align import align
from .model import FieldDiff, FieldKind, FieldStatus, KeyDiff
from .safe import CUT, DISPLAY_DEPTH, printable
from .text import common_prefix, text_diff

# What display_value shows for None; a dash reads as "no value" and differs from "".
EMPTY = "—"

_IDENTIFIER_RE = re.compile(r"[^\W\d]\w*")
_SPACE_RE = re.compile(r"\s+")


def values_equal(a: Any, b: Any) -> bool:
    """Equality as a diff sees it: True != 1, 1 != 1.0, NaN == NaN, list == tuple by items."""
    # A stack, not recursion: stored values may nest deeper than Python's recursion limit.
    pairs = [(a, b)]
    while pairs:
        a, b = pairs.pop()
        if a is b:
            continue
        if isinstance(a, bool) or isinstance(b, bool):
            if type(a) is not type(b) or a != b:
                return False
        elif {type(a), type(b)} == {int, float}:
            return False
        elif isinstance(a, float) and isinstance(b, float):
            if not (a == b or (a != a and b != b)):
                return False
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            if a.keys() != b.keys():
                return False
            pairs.extend((a[k], b[k]) for k in a)
        elif _is_list(a) and _is_list(b):
            if len(a) != len(b):
                return False
            pairs.extend(zip(a, b, strict=True))
        elif _is_list(a) or _is_list(b) or isinstance(a, Mapping) or isinstance(b, Mapping):
            return False
        else:
            try:
                if not bool(a == b):
                    return False
            except Exception:  # e.g. array-likes whose == has no single truth value
                return False
    return True


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def json_diff(old: Any, new: Any) -> tuple[KeyDiff, ...]:
    """Diff two JSON-like values by key path ("a.b[2]"); equal subtrees give one "equal" entry."""
    # At the root, None means "nothing yet", so every key shows as added (or removed).
    if old is None and new and (isinstance(new, Mapping) or _is_list(new)):
        old = {} if isinstance(new, Mapping) else []
    elif new is None and old and (isinstance(old, Mapping) or _is_list(old)):
        new = {} if isinstance(old, Mapping) else []
    out: list[KeyDiff] = []
    _walk("", old, new, out, 0)
    return tuple(out)


def _key_path(path: str, key: Any) -> str:
    if isinstance(key, str) and _IDENTIFIER_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    text = printable(key) if isinstance(key, str) else display_value(key)
    return f"{path}[{json.dumps(text, ensure_ascii=False)}]"


def _walk(path: str, old: Any, new: Any, out: list[KeyDiff], depth: int) -> None:
    both_maps = isinstance(old, Mapping) and isinstance(new, Mapping)
    both_lists = _is_list(old) and _is_list(new)
    # Below DISPLAY_DEPTH a subtree is one entry: recursion stays bounded for any value.
    if (not (both_maps or both_lists) or (depth and values_equal(old, new))
            or depth >= DISPLAY_DEPTH):
        out.append(KeyDiff(path, "equal" if values_equal(old, new) else "changed", old, new))
        return
    if both_maps:
        for key, value in old.items():
            if key in new:
                _walk(_key_path(path, key), value, new[key], out, depth + 1)
            else:
                out.append(KeyDiff(_key_path(path, key), "removed", value, None))
        for key, value in new.items():
            if key not in old:
                out.append(KeyDiff(_key_path(path, key), "added", None, value))
        return
    _walk_list(path, old, new, out, depth)


def _walk_list(path: str, old: Sequence[Any], new: Sequence[Any], out: list[KeyDiff],
               depth: int) -> None:
    """Align list items (so an insertion does not mark every later item changed)."""
    ops, _ = align(
        [_canonical(x) for x in old], [_canonical(x) for x in new], deadline=perf_counter() + 0.2
    )
    for tag, i1, i2, j1, j2 in ops:
        pairs = min(i2 - i1, j2 - j1) if tag != "equal" else i2 - i1
        for k in range(pairs):
            _walk(f"{path}[{j1 + k}]", old[i1 + k], new[j1 + k], out, depth + 1)
        for i in range(i1 + pairs, i2):
            out.append(KeyDiff(f"{path}[{i}]", "removed", old[i], None))
        for j in range(j1 + pairs, j2):
            out.append(KeyDiff(f"{path}[{j}]", "added", None, new[j]))


def _canonical(value: Any) -> str:
    """A hashable stand-in for a JSON-like value, equal exactly when the values are."""
    return json.dumps(_jsonable(value, typed=True), sort_keys=True, ensure_ascii=False)


def _jsonable(value: Any, *, typed: bool = False, depth: int = 0) -> Any:
    """`value` made JSON-serialisable; `typed` keeps int/float/bool apart for comparing.

    Containers below DISPLAY_DEPTH become CUT, so any stored value can be shown.
    """
    if isinstance(value, (Mapping, list, tuple, set, frozenset)) and depth >= DISPLAY_DEPTH:
        return CUT
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else display_value(k)): _jsonable(v, typed=typed,
                                                                       depth=depth + 1)
            for k, v in value.items()
        }
    if _is_list(value):
        return [_jsonable(v, typed=typed, depth=depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v, typed=typed, depth=depth + 1) for v in value), key=repr)
    if isinstance(value, float) and typed:
        return ["float", repr(value)]
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, Enum):
        return value
    return ["value", display_value(value)] if typed else display_value(value)


def default_label(name: str) -> str:
    """A field name as a label: underscores as spaces, first letter capitalised."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _is_collection(name: str, old: Any, new: Any, collections: Collection[str]) -> bool:
    if name in collections:
        return True
    return isinstance(old, (set, frozenset)) or isinstance(new, (set, frozenset))


def _field_changed(old: Any, new: Any, collection: bool) -> bool:
    if collection:
        added, removed, _ = collection_diff(old, new)
        return bool(added or removed)
    return not values_equal(old, new)


def _field_order(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, fields: Sequence[str] | None
) -> list[tuple[str, FieldStatus]]:
    olds: Mapping[str, Any] = old or {}
    news: Mapping[str, Any] = new or {}
    order: list[tuple[str, FieldStatus]] = []
    if fields is not None:
        known = set(fields)
        for name in fields:
            added = old is not None and name not in olds
            order.append((name, "added_column" if added else "present"))
        seen: set[str] = set()
        for name in [*news, *olds]:
            if name not in known and name not in seen:
                seen.add(name)
                order.append((name, "removed_column"))
        return order
    for name in news:
        order.append((name, "added_column" if old is not None and name not in olds else "present"))
    for name in olds:
        if name not in news:
            order.append((name, "removed_column" if new is not None else "present"))
    return order


def diff_states(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    *,
    fields: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    collections: Collection[str] = (),
    time_budget: float = 1.0,
) -> list[FieldDiff]:
    """Every field of two record states, in column order; None means no such version."""
    if old is None and new is None:
        return []
    # One budget for all text fields, so a record with many huge texts stays bounded too;
    # each still gets a small floor so that it degrades to a coarse diff, not to nothing.
    deadline = perf_counter() + time_budget
    olds: Mapping[str, Any] = old or {}
    news: Mapping[str, Any] = new or {}
    out: list[FieldDiff] = []
    for name, status in _field_order(old, new, fields):
        o, n = olds.get(name), news.get(name)
        label = (labels or {}).get(name) or default_label(name)
        collection = _is_collection(name, o, n, collections)
        # With no version on one side, every field is new (or gone).
        changed = old is None or new is None or _field_changed(o, n, collection)
        if collection:
            added, removed, unchanged = collection_diff(o, n)
            out.append(
                FieldDiff(
                    name, label, o, n, changed, "collection", None, None,
                    added, removed, unchanged, status,
                )
            )  # fmt: skip
            continue
        kind = _field_kind(o, n)
        text = None
        if kind == "text" and changed:
            text = text_diff(o, n, time_budget=max(deadline - perf_counter(), 0.02))
        keys = json_diff(o, n) if kind == "json" and changed else None
        out.append(FieldDiff(name, label, o, n, changed, kind, text, keys, status=status))
    return out


def _field_kind(old: Any, new: Any) -> FieldKind:
    if any(isinstance(v, Mapping) or _is_list(v) for v in (old, new)):
        return "json"
    if (old is None or isinstance(old, str)) and (new is None or isinstance(new, str)):
        return "scalar" if old is None and new is None else "text"
    return "scalar"


def changed_fields(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    *,
    collections: Collection[str] = (),
) -> list[str]:
    """Names of the fields whose values differ (all of them when one side is None)."""
    if old is None and new is None:
        return []
    olds: Mapping[str, Any] = old or {}
    news: Mapping[str, Any] = new or {}
    out: list[str] = []
    for name, _ in _field_order(old, new, None):
        o, n = olds.get(name), news.get(name)
        collection = _is_collection(name, o, n, collections)
        if old is None or new is None or _field_changed(o, n, collection):
            out.append(name)
    return out


def collection_diff(
    old: Iterable[Any] | None, new: Iterable[Any] | None
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    """(added, removed, unchanged) between two lists/sets, counting repeats; order kept."""
    old_items = _items(old)
    new_items = _items(new)
    try:
        pool = Counter(old_items)
        added = []
        for item in new_items:
            if pool[item] > 0:
                pool[item] -= 1
            else:
                added.append(item)
        pool = Counter(new_items)
        removed, unchanged = [], []
        for item in old_items:
            if pool[item] > 0:
                pool[item] -= 1
                unchanged.append(item)
            else:
                removed.append(item)
    except TypeError:  # unhashable items: quadratic, but such lists are short
        return _collection_diff_slow(old_items, new_items)
    return tuple(added), tuple(removed), tuple(unchanged)


def _items(values: Iterable[Any] | None) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, (str, bytes)):
        return [values]
    if isinstance(values, (set, frozenset)):
        return sorted(values, key=display_value)
    return list(values)


def _collection_diff_slow(
    old: list[Any], new: list[Any]
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    rest = list(old)
    added = []
    for item in new:
        at = next((k for k, x in enumerate(rest) if values_equal(x, item)), None)
        if at is None:
            added.append(item)
        else:
            del rest[at]
    rest_new = list(new)
    removed, unchanged = [], []
    for item in old:
        at = next((k for k, x in enumerate(rest_new) if values_equal(x, item)), None)
        if at is None:
            removed.append(item)
        else:
            del rest_new[at]
            unchanged.append(item)
    return tuple(added), tuple(removed), tuple(unchanged)


def display_value(value: Any, *, limit: int | None = None) -> str:
    """How a value reads in the admin (plain text, never markup), cut to `limit` with "…".

    Always text a page can encode: lone surrogates show as U+FFFD, deep nesting as "…".
    """
    text = printable(_display(value))
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def _display(value: Any) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, str):
        return value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        # "f" keeps the exact digits without exponent notation (Decimal("1E+2") -> "100").
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value):,} bytes>"
    if isinstance(value, memoryview):
        return f"<{value.nbytes:,} bytes>"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return str(value)


def preview(old: Any, new: Any, *, width: int = 60) -> tuple[str, str]:
    """Short one-line forms of two values, cut around their first difference, for timelines."""
    a, b = display_value(old), display_value(new)
    first = len(a) if a == b else common_prefix(a, b)
    # Cut the raw text near the difference first, so a huge value costs O(width).
    lo = max(0, first - 2 * width)
    a_part = _SPACE_RE.sub(" ", a[lo : lo + 4 * width])
    b_part = _SPACE_RE.sub(" ", b[lo : lo + 4 * width])
    first = 0 if a == b else common_prefix(a_part, b_part)
    start = max(0, first - width // 3)
    return (
        _window(a_part, start, width, lo > 0, len(a) > lo + 4 * width),
        _window(b_part, start, width, lo > 0, len(b) > lo + 4 * width),
    )


def _window(text: str, start: int, width: int, cut_before: bool, cut_after: bool) -> str:
    width = max(width, 3)
    start = min(start, max(0, len(text) - width + 1))
    lead = cut_before or start > 0
    room = width - (1 if lead else 0)
    body = text[start : start + room]
    if cut_after or start + room < len(text):
        body = body[: room - 1] + "…"
    return ("…" if lead else "") + body
