"""Collections and versioned maps in history pages: per-version deltas, labelled for people."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from versioned_admin.diff import printable
from versioned_admin.versioning import (
    Operation,
    Version,
    VersioningError,
    map_at,
    model_info,
    related_as_of,
)

from .history_support import session, state_label
from .registry import ModelView, format_pk
from .text_input import json_text


@dataclass
class Item:
    """One related record of a collection: its label and URL key."""

    label: str
    pk: str


@dataclass
class CollectionDiff:
    """A collection between two versions: added, removed and unchanged related records."""

    key: str
    label: str
    added: list[Item] = field(default_factory=list)
    removed: list[Item] = field(default_factory=list)
    unchanged: list[Item] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was added or removed."""
        return bool(self.added or self.removed)

    def summary(self) -> str:
        """``+python −flask``."""
        return " ".join([f"+{i.label}" for i in self.added] + [f"−{i.label}" for i in self.removed])


@dataclass
class MapRowDiff:
    """One key of a map between two versions (``status``: added, removed, changed, same)."""

    key: str
    old: str | None
    new: str | None
    status: str


@dataclass
class MapDiff:
    """A versioned map between two versions, key by key."""

    key: str
    label: str
    rows: list[MapRowDiff]

    @property
    def changed_rows(self) -> list[MapRowDiff]:
        """Keys whose value differs."""
        return [r for r in self.rows if r.status != "same"]

    @property
    def same_rows(self) -> list[MapRowDiff]:
        """Keys with the same value on both sides."""
        return [r for r in self.rows if r.status == "same"]

    @property
    def changed(self) -> bool:
        """Whether any key differs."""
        return bool(self.changed_rows)

    def summary(self) -> str:
        """``+beta, −comments, items_per_page: 20 → 30``."""
        parts = []
        for r in self.changed_rows:
            if r.status == "added":
                parts.append(f"+{r.key}")
            elif r.status == "removed":
                parts.append(f"−{r.key}")
            else:
                parts.append(f"{r.key}: {r.old} → {r.new}")
        return ", ".join(parts)


def collection_keys(view: ModelView) -> list[str]:
    """The recorded collections of a model."""
    info = model_info(view.model)
    return [spec.key for spec in info.collections] if info is not None else []


def map_keys(view: ModelView) -> list[str]:
    """The versioned maps of a model."""
    info = model_info(view.model)
    return list(info.maps) if info is not None else []


def _items(view: ModelView, version: Version | None, key: str) -> list[Item]:
    """The related records ``version`` lists under ``key``, labelled as they were then."""
    if version is None or version.is_delete or key not in version.state:
        return []
    try:
        records = related_as_of(session(), version, key)
    except VersioningError:
        return []
    items = []
    for rec in records:
        peer = view.peers.get(rec.model)
        label = state_label(peer, rec.state, rec.pk) if rec.state else f"#{format_pk(rec.pk)}"
        items.append(Item(label, format_pk(rec.pk)))
    return items


def collection_diff(view: ModelView, key: str, old: Version | None, new: Version | None
                    ) -> CollectionDiff:
    """``key`` from ``old`` to ``new`` (None: no version, an empty collection)."""
    before, after = _items(view, old, key), _items(view, new, key)
    old_pks, new_pks = {i.pk for i in before}, {i.pk for i in after}
    return CollectionDiff(
        key,
        view.label_for(key),
        added=[i for i in after if i.pk not in old_pks],
        removed=[i for i in before if i.pk not in new_pks],
        unchanged=[i for i in after if i.pk in old_pks],
    )


def show(value: Any) -> str:
    """A map value as typed in the form (strings bare, the rest as JSON)."""
    return printable(value) if isinstance(value, str) else json_text(value)


def map_state(view: ModelView, pk: tuple[Any, ...], name: str, version: Version | None
              ) -> dict[str, Any]:
    """The map ``name`` at ``version`` (empty for none or a deletion)."""
    if version is None or version.operation is Operation.DELETE:
        return {}
    try:
        return map_at(session(), view.model, pk, version.number, name=name)
    except VersioningError:
        return {}


def map_diff(view: ModelView, pk: tuple[Any, ...], name: str, old: Version | None,
             new: Version | None) -> MapDiff:
    """Map ``name`` from ``old`` to ``new``, key by key (sorted)."""
    a, b = map_state(view, pk, name, old), map_state(view, pk, name, new)
    rows = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            rows.append(MapRowDiff(key, None, show(b[key]), "added"))
        elif key not in b:
            rows.append(MapRowDiff(key, show(a[key]), None, "removed"))
        else:
            same = type(a[key]) is type(b[key]) and a[key] == b[key]
            rows.append(MapRowDiff(key, show(a[key]), show(b[key]), "same" if same else "changed"))
    return MapDiff(name, view.label_for(name), rows)


def relation_diffs(view: ModelView, pk: tuple[Any, ...], old: Version | None,
                   new: Version | None) -> tuple[list[CollectionDiff], list[MapDiff]]:
    """Every collection and map of the model between two versions."""
    cols = [collection_diff(view, k, old, new) for k in collection_keys(view)]
    maps = [map_diff(view, pk, k, old, new) for k in map_keys(view)]
    return cols, maps


def timeline_summary(view: ModelView, pk: tuple[Any, ...], key: str, old: Version | None,
                     new: Version) -> str | None:
    """``+python −flask`` for a collection or map ``key`` changed in ``new``; None otherwise."""
    if key in collection_keys(view):
        return collection_diff(view, key, old, new).summary() or "reordered"
    if key in map_keys(view):
        return map_diff(view, pk, key, old, new).summary() or "no key changed"
    return None
