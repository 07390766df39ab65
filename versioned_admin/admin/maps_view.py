"""Per-key history of a versioned map: every value a key had, when, and who set it."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint
from werkzeug.exceptions import NotFound

from versioned_admin.versioning import key_history

from .context import admin_url, has_view, render_page
from .history_support import RecordRef, record_ref, session, time_helpers
from .relations_history import map_keys, show


def key_url_for(ref: RecordRef) -> Callable[[str, str], str] | None:
    """A function giving the per-key history URL of ``(map name, key)``; None without the page."""
    if not has_view("map_key_view"):
        return None

    def url(name: str, key: str) -> str:
        return admin_url("map_key_view", model=ref.view.slug, pk=ref.pk, field=name, key=key)

    return url


def map_key_view(model: str, pk: str, field: str, key: str) -> tuple[str, int]:
    """Every value ``key`` of map ``field`` had, oldest first, with its version and changeset."""
    ref = record_ref(model, pk)
    if field not in map_keys(ref.view):
        raise NotFound(f"{ref.view.singular} has no versioned map {field[:80]!r}.")
    history = key_history(session(), ref.view.model, ref.key, key, name=field)
    current = None
    if ref.live is not None:
        data = getattr(ref.live, field)
        current = show(data[key]) if key in data else None
    return render_page(
        "versioned_admin/map_key.html",
        view=ref.view,
        ref=ref,
        field=field,
        field_label=ref.view.label_for(field),
        key=key,
        history=list(reversed(history)),
        current=current,
        show=show,
        **time_helpers(),
    )


def add_map_routes(bp: Blueprint) -> None:
    """Register the per-key map history page."""
    bp.add_url_rule("/<model>/<pk>/map/<field>/<path:key>", "map_key_view", map_key_view)
