"""Text and JSON typed into a form: refused unless the database can store and give it back
exactly (valid Unicode, within the configured size and depth, numbers JSON and the version
table hold exactly), and any stored value shown so that the page can be served."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from flask import current_app, has_app_context
from wtforms import fields
from wtforms.validators import ValidationError

from versioned_admin.diff import display_value
from versioned_admin.versioning.values_check import (
    MAX_JSON_DEPTH,
    json_problem,
    map_value_problem,
    text_problem,
)

#: Defaults of VERSIONED_ADMIN_MAX_TEXT_BYTES and VERSIONED_ADMIN_MAX_JSON_DEPTH.
MAX_TEXT_BYTES = 1_048_576
JSON_DEPTH = MAX_JSON_DEPTH


def _config(key: str, default: int) -> int:
    value = current_app.config.get(key, default) if has_app_context() else default
    return default if value is None else int(value)


def text_size_error(text: str) -> str | None:
    """The message for text longer than VERSIONED_ADMIN_MAX_TEXT_BYTES (UTF-8), else None."""
    limit = _config("VERSIONED_ADMIN_MAX_TEXT_BYTES", MAX_TEXT_BYTES)
    if len(text) * 4 <= limit:
        return None  # cannot be too long: no need to encode it
    size = len(text) if len(text) > limit else len(text.encode("utf-8", "surrogatepass"))
    if size <= limit:
        return None
    return f"This is too long: at most {limit:,} bytes can be saved here (this has {size:,})."


def storable_text(form: Any, field: fields.Field) -> None:
    """Text that is not valid Unicode (a lone surrogate) or is too long is refused."""
    if not isinstance(field.data, str):
        return
    problem = text_problem(field.data)
    if problem:
        raise ValidationError(f"This text {problem}.")
    message = text_size_error(field.data)
    if message:
        raise ValidationError(message)


_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKETS = {c: None for c in range(128) if chr(c) not in _STEP}  # for str.translate
_SURROGATE = re.compile("[\ud800-\udfff]")


def nested_deeper_than(text: str, limit: int) -> bool:
    """True if the JSON text opens more than ``limit`` brackets at once (scanned, not parsed).

    C-speed string operations only, so it costs about what ``json.loads`` does and never
    recurses: escapes are dropped, then every other part of the split at quotes is a string.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    plain = text.replace("\\\\", "").replace('\\"', "")
    brackets = "".join(plain.split('"')[::2]).translate(_NOT_BRACKETS)
    if not brackets.isascii():  # text outside strings: not JSON, but scan it all the same
        brackets = re.sub(r"[^\[\]{}]", "", brackets)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


class _Unstorable(ValueError):
    """A JSON number that parses but cannot be stored."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON can hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise _Unstorable(f"the number {text[:40]} is too large")
    return value


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > 19:  # longer than any 64-bit integer: do not even convert it
        raise _Unstorable(f"the integer {text[:40]}{'…' if len(text) > 40 else ''} does not "
                          "fit 64 bits; store it as a string")
    return int(text)


def parse_json_text(text: str) -> Any:
    """The value of JSON text as the admin accepts it; ValueError with a message if refused."""
    problem = text_problem(text)
    if problem:
        raise ValueError(f"This text {problem}.")
    message = text_size_error(text)
    if message:
        raise ValueError(message)
    depth = min(_config("VERSIONED_ADMIN_MAX_JSON_DEPTH", JSON_DEPTH), MAX_JSON_DEPTH)
    if nested_deeper_than(text, depth):
        raise ValueError(f"This JSON is nested deeper than {depth} levels, more than can be "
                         "saved.")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                           parse_int=_short_int)
    except _Unstorable as exc:
        raise ValueError(f"This JSON cannot be saved exactly: {exc}.") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"This is not valid JSON: {exc}") from None
    problem = json_problem(value, max_depth=depth)
    if problem:
        raise ValueError(f"This JSON cannot be saved exactly: {problem}.")
    return value


def json_text(value: Any, *, indent: int | None = None) -> str:
    """JSON for a form or a page: any stored value, lone surrogates as \\u escapes."""
    try:
        text = json.dumps(value, indent=indent, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        # stored before such values were refused (nested too deep): shown cut at 64 levels
        return display_value(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: show the escape that stands for it
            text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def map_value_error(text: str, value: Any) -> str | None:
    """The message for a map value typed as ``text`` (read as ``value``) that cannot be saved."""
    problem = text_problem(text)
    if problem:
        return f"This value {problem}."
    message = text_size_error(text)
    if message:
        return message
    problem = map_value_problem(value)
    return f"This value cannot be saved exactly: {problem}." if problem else None
