"""The activity page: every changeset across the admin's models, newest first, filtered."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app, request
from werkzeug.exceptions import BadRequest

from versioned_admin.versioning import Changeset, Version, changesets

from .context import current_admin, render_page
from .history_support import parse_number, session, state_label, time_helpers
from .registry import ModelView, format_pk
from .timeline import describe_operation

#: Records listed per changeset before "and N more".
RECORDS_SHOWN = 10


@dataclass
class ActivityEntry:
    """One version inside a changeset, ready to show."""

    version: Version
    view: ModelView | None
    pk: str
    label: str
    fields: list[str]


@dataclass
class ActivityItem:
    """One changeset and its records."""

    changeset: Changeset
    entries: list[ActivityEntry]
    more: int


def _date(raw: str, what: str) -> dt.date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{what} must be a date like 2024-05-31, not {raw[:40]!r}.") from None


@dataclass
class Filters:
    """The activity page's filters as given (to refill the form and build links)."""

    model: str
    user: str
    start: str
    end: str

    def args(self, **extra: str | int) -> dict[str, str | int]:
        """Query arguments for links that keep these filters."""
        out: dict[str, str | int] = {k: v for k, v in (("model", self.model), ("user", self.user),
                                                       ("from", self.start), ("to", self.end)) if v}
        out.update(extra)
        return out


def activity_view() -> tuple[str, int]:
    """Every changeset newest first: who, when, reason, records and fields; keyset pages."""
    admin = current_admin()
    args = request.args
    filters = Filters(args.get("model", "").strip(), args.get("user", "").strip(),
                      args.get("from", "").strip(), args.get("to", "").strip())
    views = [v for v in admin.views.values() if v.versioned]
    if filters.model:
        chosen = admin.views.get(filters.model)
        if chosen is None or not chosen.versioned:
            raise BadRequest(f"There is no versioned model called {filters.model[:40]!r}.")
        views = [chosen]
    start = _date(filters.start, "The start date")
    end = _date(filters.end, "The end date")
    if start and end and end < start:
        raise BadRequest("The end date is before the start date.")
    raw_before = args.get("before")
    before = None if raw_before in (None, "") else parse_number(raw_before, "before")
    size = int(current_app.config.get("VERSIONED_ADMIN_PAGE_SIZE", 20))
    found = changesets(
        session(),
        [v.model for v in views],
        start=dt.datetime.combine(start, dt.time(), dt.UTC) if start else None,
        end=dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC) if end else None,
        user=filters.user or None,
        before=before,
        limit=size + 1,
    ) if views else []
    items = []
    for changeset, versions in found[:size]:
        entries = []
        for version in versions[:RECORDS_SHOWN]:
            view = admin.nearest_view(version.model)
            fields = [view.label_for(k) if view else k for k in version.changed]
            entries.append(ActivityEntry(version, view, format_pk(version.pk),
                                         state_label(view, version.state, version.pk), fields))
        items.append(ActivityItem(changeset, entries, max(0, len(versions) - RECORDS_SHOWN)))
    next_before = found[size - 1][0].id if len(found) > size else None
    return render_page(
        getattr(admin, "activity_template", "versioned_admin/activity.html"),
        items=items,
        filters=filters,
        model_views=[v for v in admin.views.values() if v.versioned],
        before=before,
        next_before=next_before,
        describe_operation=describe_operation,
        **time_helpers(),
    )
