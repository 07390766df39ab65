"""Shared helpers of the history pages: the record of a URL, version numbers, labels, times."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import g, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, NotFound

from versioned_admin.diff import FieldDiff, diff_states, display_value
from versioned_admin.versioning import (
    Version,
    VersionNotFound,
    get_version,
    latest_version,
    model_info,
)

from .context import current_admin, get_view
from .registry import ModelView, attr_key, format_pk, load_record, parse_pk

#: Cookie that history.js sets to the browser's IANA time zone (e.g. "Europe/Rome").
TZ_COOKIE = "va_tz"
_NUMBER_RE = re.compile(r"^[1-9][0-9]{0,17}$")


@dataclass
class RecordRef:
    """A versioned record named by a URL: its view, parsed key, URL text and newest version."""

    view: ModelView
    key: tuple[Any, ...]
    pk: str
    latest: Version | None
    live: Any | None
    labels: dict[Any, str] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        """Whether the record's newest version records its deletion."""
        return self.latest is not None and self.latest.is_delete and self.live is None

    @property
    def label(self) -> str:
        """The record's label (from the live row, else from its last known state)."""
        if self.live is not None:
            return self.view.label_of(self.live)
        return state_label(self.view, self.latest.state if self.latest else {}, self.key)


def session() -> Session:
    """The request's session."""
    return current_admin().session()


def record_ref(model: str, pk: str) -> RecordRef:
    """The versioned record of a URL (live or deleted), or a 400/404 page."""
    view = get_view(model)
    if not view.versioned:
        raise NotFound(f"{view.label} records have no history.")
    try:
        key = parse_pk(view.model, pk)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{pk[:80]!r} is not a valid id for {view.label}.") from None
    s = session()
    latest = latest_version(s, view.model, key)
    live = load_record(s, view.model, key)
    if latest is None and live is None:
        raise NotFound(f"There is no {view.label} record with id {pk[:80]!r}.")
    return RecordRef(view, key, format_pk(key), latest, live)


def parse_number(raw: str | None, what: str) -> int:
    """A version number from the query string, or a 400 page."""
    if raw is None or not _NUMBER_RE.match(raw.strip()):
        shown = "nothing" if raw is None else repr(raw[:40])
        raise BadRequest(f"{what} must be a version number (1, 2, …), not {shown}.")
    return int(raw.strip())


def fetch_version(ref: RecordRef, number: int) -> Version:
    """Version ``number`` of the record, or a 404 page."""
    try:
        return get_version(session(), ref.view.model, ref.key, number)
    except VersionNotFound:
        newest = ref.latest.number if ref.latest else 0
        raise NotFound(
            f"{ref.view.singular} {ref.pk} has no version {number} (its versions are 1 to "
            f"{newest})."
        ) from None


def state_label(view: ModelView | None, state: dict[str, Any], pk: tuple[Any, ...]) -> str:
    """A record's label from a stored state (name, title, … else "Model #pk")."""
    for attr in ("name", "title", "label", "username", "email", "slug", "code"):
        if state.get(attr) not in (None, ""):
            return str(state[attr])
    name = view.singular if view is not None else "Record"
    return f"{name} #{format_pk(pk)}"


def field_keys(view: ModelView) -> list[str]:
    """The model's versioned fields in column order, without the primary key."""
    info = model_info(view.model)
    if info is None:
        return []
    return [key for key, _col in info.fields if key not in info.pk_keys]


def fk_relations(view: ModelView) -> dict[str, tuple[type, str]]:
    """FK column key -> (related model, remote attribute key) for single-column many-to-ones."""
    result: dict[str, tuple[type, str]] = {}
    for info in view.infos.values():
        rel = info.relation
        if rel is None or len(rel.local_columns) != 1 or len(rel.remote_side) != 1:
            continue
        (local,) = rel.local_columns
        (remote,) = rel.remote_side
        result[attr_key(view.model, local)] = (info.target, attr_key(info.target, remote))
    return result


@dataclass(frozen=True)
class RelatedLabel:
    """A foreign key shown as the related record's label (diffed as one value, not as text)."""

    text: str

    def __str__(self) -> str:
        return self.text


def related_label(view: ModelView, target: type, remote: str, value: Any) -> str:
    """The label of the record an FK value points at, cached per request."""
    cache: dict[tuple[type, Any], str] = g.setdefault("_va_related_labels", {})
    ck = (target, value)
    if ck in cache:
        return cache[ck]
    s = session()
    obj = None
    pk_keys = [attr_key(target, c) for c in _pk_cols(target)]
    if pk_keys == [remote]:
        try:
            obj = load_record(s, target, (value,))
        except Exception:  # a malformed stored value: show the raw id
            obj = None
    label = f"{view.label_of(obj)} (#{value})" if obj is not None else f"#{value} (deleted)"
    cache[ck] = label
    return label


def _pk_cols(model: type) -> list[Any]:
    from .registry import pk_columns

    return pk_columns(model)


def display_state(view: ModelView, state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A state with FK values replaced by the related record's label."""
    if state is None:
        return None
    relations = fk_relations(view)
    out = dict(state)
    for key, (target, remote) in relations.items():
        value = out.get(key)
        if value is not None and key in out:
            out[key] = RelatedLabel(related_label(view, target, remote, value))
    return out


def labels_for(view: ModelView, keys: list[str]) -> dict[str, str]:
    """Human labels of state keys (FK columns read like their relation)."""
    return {key: view.label_for(key) for key in keys}


def field_diffs(
    view: ModelView, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> list[FieldDiff]:
    """Field-by-field diff of two states for display (relations by label)."""
    keys = field_keys(view)
    info = model_info(view.model)
    collections = {spec.key for spec in info.collections} if info is not None else set()
    old = _without(old, collections)  # collections: relations_history.collection_diff
    new = _without(new, collections)
    names = set(keys) | set(old or {}) | set(new or {})
    pk_keys = set((model_info(view.model) or _NoInfo).pk_keys)
    labels = labels_for(view, [k for k in names if k not in pk_keys])
    old_d = _without(display_state(view, old), pk_keys)
    new_d = _without(display_state(view, new), pk_keys)
    return diff_states(old_d, new_d, fields=keys, labels=labels)


class _NoInfo:
    pk_keys: tuple[str, ...] = ()


def _without(state: dict[str, Any] | None, keys: set[str]) -> dict[str, Any] | None:
    if state is None:
        return None
    return {k: v for k, v in state.items() if k not in keys}


def short(value: Any, limit: int = 120) -> str:
    """A value as one short line of text."""
    return display_value(value, limit=limit).replace("\n", " ")


# -- time --------------------------------------------------------------------------------


def viewer_zone() -> dt.tzinfo:
    """The viewer's time zone from the ``va_tz`` cookie, else UTC."""
    name = request.cookies.get(TZ_COOKIE, "")
    if name and len(name) < 64 and re.match(r"^[A-Za-z0-9_+\-/]+$", name):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return dt.UTC


def exact_time(when: dt.datetime) -> str:
    """A timestamp in the viewer's zone, e.g. "2024-05-01 14:03:22 UTC"."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    zone = viewer_zone()
    local = when.astimezone(zone)
    name = "UTC" if zone is dt.UTC else local.tzname() or str(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + name


def relative_time(when: dt.datetime, now: dt.datetime | None = None) -> str:
    """How long ago, e.g. "3 minutes ago"."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 45:
        return "just now"
    for size, unit in ((31_536_000, "year"), (2_592_000, "month"), (86_400, "day"),
                       (3_600, "hour"), (60, "minute")):
        if seconds >= size:
            n = max(1, round(seconds / size)) if unit != "year" else seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def time_helpers() -> dict[str, Any]:
    """Template helpers for times."""
    return {"exact_time": exact_time, "relative_time": relative_time,
            "iso_time": lambda when: when.isoformat(), "display_value": display_value}
