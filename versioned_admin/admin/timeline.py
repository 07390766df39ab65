"""The timeline of one record (newest first, keyset pages) and its blame."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request
from sqlalchemy import and_, select

from versioned_admin.diff import preview
from versioned_admin.versioning import Operation, Version, get_version, model_info, versions

from .context import can, current_admin, render_page
from .history_support import (
    RecordRef,
    display_state,
    field_keys,
    parse_number,
    record_ref,
    session,
    time_helpers,
)
from .relations_history import timeline_summary

#: Fields listed with an old → new preview per version; the rest are counted.
PREVIEW_FIELDS = 6
#: Blame looks at this many versions at most (newest first), in pages of BLAME_PAGE.
BLAME_LIMIT = 1_000
BLAME_PAGE = 250


@dataclass
class Change:
    """One changed field of a version: label and short old/new previews."""

    key: str
    label: str
    old: str
    new: str
    summary: str | None = None  # collections and maps: "+python −flask"


@dataclass
class Entry:
    """One timeline row."""

    version: Version
    changes: list[Change]
    more: int
    previous: int | None


@dataclass
class Blame:
    """Who last set a field's current value (``number`` None: older than the scan reached)."""

    key: str
    label: str
    number: int | None
    issued_at: dt.datetime | None
    user: str | None
    reason: str | None


def describe_operation(version: Version) -> str:
    """What a version did, in words ("reverted to version 3", "restored", …)."""
    if version.operation is Operation.DELETE:
        return "deleted"
    if version.operation is Operation.INSERT:
        return "restored" if version.number > 1 else "created"
    if version.reverted_from is not None:
        return f"reverted to version {version.reverted_from}"
    return "edited"


def _changes(ref: RecordRef, version: Version, prev: Version | None) -> tuple[list[Change], int]:
    if version.operation is not Operation.UPDATE:
        return [], 0
    keys = [k for k in version.changed if k not in (model_info(ref.view.model) or _Empty).pk_keys]
    old = display_state(ref.view, prev.state if prev else {}) or {}
    new = display_state(ref.view, version.state) or {}
    changes = []
    before = prev
    if before is None and version.number > 1:  # the page's last row: its previous version
        before = get_version(session(), ref.view.model, ref.key, version.number - 1)
    for key in keys[:PREVIEW_FIELDS]:
        summary = timeline_summary(ref.view, ref.key, key, before, version)
        if summary is not None:
            changes.append(Change(key, ref.view.label_for(key), "", "", summary))
            continue
        a, b = preview(old.get(key), new.get(key), width=48)
        changes.append(Change(key, ref.view.label_for(key), a, b))
    return changes, max(0, len(keys) - PREVIEW_FIELDS)


class _Empty:
    pk_keys: tuple[str, ...] = ()


def page_size() -> int:
    """Versions per timeline page."""
    return int(current_app.config.get("VERSIONED_ADMIN_HISTORY_PAGE_SIZE", 25))


def history_view(model: str, pk: str) -> tuple[str, int]:
    """The timeline: versions newest first with who/when/why and previews; compare form."""
    ref = record_ref(model, pk)
    raw_before = request.args.get("before")
    before = None if raw_before in (None, "") else parse_number(raw_before, "before")
    size = page_size()
    found = versions(session(), ref.view.model, ref.key, before=before, limit=size + 1)
    shown, extra = found[:size], found[size:]
    entries = []
    for i, version in enumerate(shown):
        prev = found[i + 1] if i + 1 < len(found) else None
        changes, more = _changes(ref, version, prev)
        previous = version.number - 1 if version.number > 1 else None
        entries.append(Entry(version, changes, more, previous))
    next_before = shown[-1].number if extra else None
    # Blame from the versions on this page costs nothing; looking further back is on request.
    deep = request.args.get("blame") == "all"
    blame = blame_for(ref, shown, limit=BLAME_LIMIT if deep else len(shown)) if (
        before is None) else []
    admin = current_admin()
    return render_page(
        getattr(admin, "history_template", "versioned_admin/history.html"),
        view=ref.view,
        ref=ref,
        entries=entries,
        before=before,
        next_before=next_before,
        blame=blame,
        blame_partial=any(b.number is None for b in blame) and not deep,
        blame_horizon=shown[-1].number if shown else None,
        describe_operation=describe_operation,
        can_revert=can("revert", ref.view),
        **time_helpers(),
    )


# -- blame ---------------------------------------------------------------------------------


@dataclass
class _Step:
    number: int
    operation: str
    changed: tuple[str, ...] | None
    issued_at: dt.datetime | None
    user: str | None
    reason: str | None


def _steps(ref: RecordRef, before: int | None, limit: int) -> list[_Step]:
    """Version numbers with their changed keys and changeset, newest first (no states)."""
    info = model_info(ref.view.model)
    if info is not None and info.strategy == "shadow" and info.version_table is not None:
        vt, cs = info.version_table, info.changesets
        where = [vt.c[c.name] == v for c, v in zip(info.pk_columns, ref.key, strict=True)]
        if before is not None:
            where.append(vt.c.version < before)
        stmt = (
            select(vt.c.version, vt.c.operation, vt.c.changed, cs.c.issued_at, cs.c.user,
                   cs.c.reason)
            .join(cs, cs.c.id == vt.c.changeset_id)
            .where(and_(*where))
            .order_by(vt.c.version.desc())
            .limit(limit)
        )
        return [
            _Step(int(r.version), r.operation, tuple(r.changed) if r.changed else None,
                  r.issued_at, r.user, r.reason)
            for r in session().execute(stmt)
        ]
    return [_step(v) for v in versions(session(), ref.view.model, ref.key, before=before,
                                       limit=limit)]


def _step(v: Version) -> _Step:
    cs = v.changeset
    return _Step(v.number, v.operation.value, v.changed, cs.issued_at, cs.user, cs.reason)


def blame_for(ref: RecordRef, first: list[Version], limit: int = BLAME_LIMIT) -> list[Blame]:
    """Per field, the version that last set its current value, looking at ``limit`` versions."""
    cache: dict[Any, list[Blame]] = g.setdefault("_va_blame", {})
    ck = (ref.view.slug, ref.key, limit)
    if ck in cache:
        return cache[ck]
    keys = field_keys(ref.view)
    if ref.latest is None or ref.deleted:
        return []
    open_keys = set(keys)
    found: dict[str, _Step] = {}
    steps = [_step(v) for v in first]
    seen = 0
    before: int | None = None
    while open_keys and seen < limit:
        if not steps:
            steps = _steps(ref, before, BLAME_PAGE)
            if not steps:
                break
        for step in steps:
            seen += 1
            if step.operation == Operation.DELETE.value:
                continue
            touched = open_keys if step.operation == Operation.INSERT.value else (
                open_keys & set(step.changed or ()))
            for key in list(touched):
                found[key] = step
                open_keys.discard(key)
            if not open_keys:
                break
        before = steps[-1].number
        if before <= 1:
            break
        steps = []
    result = []
    for key in keys:
        hit = found.get(key)
        result.append(Blame(
            key, ref.view.label_for(key), hit.number if hit else None,
            hit.issued_at if hit else None, hit.user if hit else None,
            hit.reason if hit else None,
        ))
    cache[ck] = result
    return result
