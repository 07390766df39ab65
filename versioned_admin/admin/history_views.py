"""The diff page, revert (preview and POST), deleted records and restore."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, flash, redirect, request
from flask_wtf import FlaskForm
from werkzeug.exceptions import BadRequest, Forbidden, NotFound
from werkzeug.wrappers import Response
from wtforms import fields, validators

from versioned_admin.diff import FieldDiff
from versioned_admin.versioning import (
    NotDeleted,
    Operation,
    Version,
    VersioningError,
    deleted_records,
    expect_version,
    get_live,
    latest_version,
    restore,
    revert,
)

from .context import admin_url, can, current_admin, get_view, render_page
from .history_support import (
    RecordRef,
    fetch_version,
    field_diffs,
    field_keys,
    parse_number,
    record_ref,
    session,
    short,
    state_label,
    time_helpers,
)
from .maps_view import key_url_for
from .registry import format_pk
from .relations_history import CollectionDiff, MapDiff, relation_diffs
from .saving import commit_form
from .timeline import describe_operation

Page = tuple[str, int] | Response
CURRENT = "current"


class RevertForm(FlaskForm):
    """Confirming a revert: CSRF, the version the preview was based on, a reason."""

    seen_version = fields.HiddenField()
    change_reason = fields.StringField(
        "Reason for change", [validators.Optional(), validators.Length(max=500)]
    )


class RestoreForm(FlaskForm):
    """Confirming a restore: CSRF and an optional reason."""

    change_reason = fields.StringField(
        "Reason for change", [validators.Optional(), validators.Length(max=500)]
    )


def _template(name: str) -> str:
    return str(getattr(current_admin(), f"{name}_template", f"versioned_admin/{name}.html"))


# -- diff ----------------------------------------------------------------------------------


def _parse_side(raw: str | None, what: str) -> int | None:
    """A ``from``/``to`` value: a number, or None for ``current``; a 400 page otherwise."""
    if raw is not None and raw.strip().lower() == CURRENT:
        return None
    return parse_number(raw, what)


def _side(ref: RecordRef, number: int | None) -> Version:
    """The version a parsed ``from``/``to`` names (None: the newest)."""
    if number is None:
        assert ref.latest is not None
        return ref.latest
    return fetch_version(ref, number)


def split(diffs: list[FieldDiff]) -> tuple[list[FieldDiff], list[FieldDiff]]:
    """(changed, unchanged) fields."""
    return [d for d in diffs if d.changed], [d for d in diffs if not d.changed]


def diff_view(model: str, pk: str) -> Page:
    """Two versions side by side, field by field (``?from=N&to=M``, either may be current)."""
    ref = record_ref(model, pk)
    if ref.latest is None:
        raise NotFound(f"{ref.view.singular} {ref.pk} has no versions yet.")
    raw_to, raw_from = request.args.get("to"), request.args.get("from")
    to_no = None if raw_to in (None, "") else _parse_side(raw_to, "to")
    from_no = None if raw_from in (None, "") else _parse_side(raw_from, "from")
    to = _side(ref, to_no)
    old: Version | None
    if raw_from in (None, ""):
        old = fetch_version(ref, to.number - 1) if to.number > 1 else None
    else:
        old = _side(ref, from_no)
    diffs = field_diffs(ref.view, old.state if old else None, to.state)
    changed, unchanged = split(diffs)
    rel_cols, rel_maps = relation_diffs(ref.view, ref.key, old, to)
    latest = ref.latest.number
    first = old.number if old else to.number
    prev_pair = (first - 1, first) if first > 1 else None
    next_pair = (to.number, to.number + 1) if to.number < latest else None
    return render_page(
        _template("diff"),
        view=ref.view,
        ref=ref,
        old=old,
        new=to,
        changed=changed,
        unchanged=unchanged,
        rel_cols=rel_cols,
        rel_maps=rel_maps,
        key_url=key_url_for(ref),
        prev_pair=prev_pair,
        next_pair=next_pair,
        describe_operation=describe_operation,
        can_revert=can("revert", ref.view),
        **time_helpers(),
    )


# -- revert --------------------------------------------------------------------------------


@dataclass
class RevertPlan:
    """What reverting the record to a version would change."""

    target: Version
    current: Version
    changed: list[FieldDiff]
    unchanged: list[FieldDiff]
    lost: list[FieldDiff]
    rel_cols: list[CollectionDiff]
    rel_maps: list[MapDiff]

    @property
    def relations(self) -> list[str]:
        """The collections the revert takes back (those that differ)."""
        return [d.key for d in self.rel_cols if d.changed]

    @property
    def noop(self) -> bool:
        """True when the record already has the target's values."""
        related = self.relations or any(d.changed for d in self.rel_maps)
        return not self.changed and not related and not self.current.is_delete


def _plan(ref: RecordRef, number: int) -> RevertPlan:
    target = fetch_version(ref, number)
    if target.is_delete:
        raise BadRequest(
            f"Version {number} records the deletion of this record; revert to a version before "
            "it, or restore the record."
        )
    current = ref.latest
    assert current is not None
    diffs = field_diffs(ref.view, None if current.is_delete else current.state, target.state)
    changed, unchanged = split(diffs)
    lost = [d for d in changed if d.status == "removed_column"]
    changed = [d for d in changed if d.status != "removed_column"]
    now = None if current.is_delete else current
    rel_cols, rel_maps = relation_diffs(ref.view, ref.key, now, target)
    return RevertPlan(target, current, changed, unchanged, lost, rel_cols, rel_maps)


def revert_view(model: str, pk: str, number: str) -> Page:
    """Preview (GET) and perform (POST) a revert to version ``number``, refusing stale previews."""
    ref = record_ref(model, pk)
    view = ref.view
    n = parse_number(number, "The version to revert to")
    if not can("revert", view):
        raise Forbidden(f"You are not allowed to revert {view.label} records.")
    if ref.latest is None:
        raise NotFound(f"{view.singular} {ref.pk} has no versions yet.")
    plan = _plan(ref, n)
    posted = request.method == "POST"
    form = RevertForm(formdata=request.form if posted else None)
    status, message = 200, None
    if not posted:
        form.seen_version.data = str(plan.current.number)
    elif not form.validate():
        status = 400
        message = ("The form's security token was missing or has expired. Nothing was "
                   "changed; please confirm again.") if "csrf_token" in form.errors else (
                   "Please correct the reason below.")
        form.seen_version.data = str(plan.current.number)
    elif form.seen_version.data != str(plan.current.number):
        status = 409
        message = (f"This record changed after the preview was shown (it is now at version "
                   f"{plan.current.number}). Nothing was reverted; check the new changes below "
                   "and confirm again.")
        form.seen_version.data = str(plan.current.number)
    elif plan.noop:
        status = 409
        message = f"The record already has the values of version {n}; nothing to revert."
    else:
        done = _do_revert(ref, n, form, plan.relations)
        if isinstance(done, Response):
            return done
        status, message = 409, done
    if not posted and plan.noop:
        message = f"The record already has the values of version {n}; there is nothing to revert."
    return render_page(
        _template("revert"),
        status=status,
        status_code=status,
        view=view,
        ref=ref,
        plan=plan,
        form=form,
        message=message,
        describe_operation=describe_operation,
        **time_helpers(),
    )


def _do_revert(
    ref: RecordRef, number: int, form: RevertForm, relations: list[str]
) -> Response | str:
    s = session()
    try:
        live = get_live(s, ref.view.model, ref.key)
        if live is not None and form.seen_version.data and form.seen_version.data.isdigit():
            # the preview's version is checked again inside the flush, after the row lock
            expect_version(s, live, int(form.seen_version.data))
        revert(s, ref.view.model, number, pk=ref.key, relations=relations)
    except VersioningError as exc:
        s.rollback()
        return f"This version cannot be restored: {exc}"
    message = commit_form(form)
    if message is not None:
        return message
    new = latest_version(s, ref.view.model, ref.key)
    saved = f" as version {new.number}" if new is not None else ""
    flash(f"Reverted {ref.label} to version {number}{saved}.", "success")
    return redirect(admin_url("history_view", model=ref.view.slug, pk=ref.pk))


# -- deleted records and restore -----------------------------------------------------------


@dataclass
class DeletedRow:
    """One deleted record: its final version, label and a few last values."""

    version: Version
    pk: str
    label: str
    values: list[tuple[str, str]]


def _deleted_page(model: type, before: int | None, size: int) -> tuple[list[Version], int | None]:
    """A keyset page of deleted records that never splits one changeset across pages."""
    s = session()
    limit = size + 1
    while True:
        found = deleted_records(s, model, before=before, limit=limit)
        if len(found) <= size:
            return found, None
        shown = found[:size]
        last_cs = shown[-1].changeset.id
        if found[size].changeset.id != last_cs:
            return shown, last_cs
        if limit > 5_000:  # one enormous changeset: show it whole, up to this bound
            return found, None
        limit *= 4


def deleted_view(model: str) -> Page:
    """Deleted records, newest deletion first, each with who/when, last state and restore."""
    view = get_view(model)
    if not view.versioned:
        raise NotFound(f"{view.label} records have no history.")
    raw_before = request.args.get("before")
    before = None if raw_before in (None, "") else parse_number(raw_before, "before")
    size = int(current_app.config.get("VERSIONED_ADMIN_PAGE_SIZE", 20))
    found, next_before = _deleted_page(view.model, before, size)
    keys = field_keys(view)[:4]
    rows = []
    for v in found:
        values = [(view.label_for(k), short(v.state.get(k), 80)) for k in keys if k in v.state]
        rows.append(DeletedRow(v, format_pk(v.pk), state_label(view, v.state, v.pk), values))
    return render_page(
        _template("deleted"),
        view=view,
        rows=rows,
        before=before,
        next_before=next_before,
        form=RestoreForm(formdata=None),
        can_restore=can("revert", view) and view.can_create,
        **time_helpers(),
    )


def restore_view(model: str, pk: str) -> Page:
    """Restore a deleted record (POST with CSRF): same primary key, a new version."""
    ref = record_ref(model, pk)
    view = ref.view
    if not (can("revert", view) and view.can_create):
        raise Forbidden(f"You are not allowed to restore {view.label} records.")
    form = RestoreForm(formdata=request.form)
    if not form.validate():
        raise BadRequest("The form's security token was missing or has expired. Nothing was "
                         "restored; go back and try again.")
    s = session()
    try:
        restore(s, view.model, ref.key)
    except NotDeleted:
        s.rollback()
        return _restore_refused(ref, f"{ref.label} is not deleted, so there is nothing to "
                                     "restore.")
    message = commit_form(form)
    if message is not None:
        return _restore_refused(ref, message)
    new = latest_version(s, view.model, ref.key)
    saved = f" as version {new.number}" if new is not None else ""
    flash(f"Restored {ref.label}{saved}.", "success")
    return redirect(admin_url("history_view", model=view.slug, pk=ref.pk))


def _restore_refused(ref: RecordRef, message: str) -> Page:
    from .errors import error_page

    return error_page(409, message)


def operation_name(version: Version) -> str:
    """The version's operation for CSS classes."""
    return version.operation.value if version.operation is not Operation.UPDATE else "update"


def template_globals() -> dict[str, Any]:
    """Extra template helpers of the history pages."""
    return {"operation_name": operation_name}
