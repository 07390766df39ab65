"""The CRUD pages: index, list, create, edit, delete (routes on the admin's blueprint)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, request
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Response
from wtforms import fields, validators

from versioned_admin.versioning import (
    changesets,
    expect_version,
    last_verification,
    latest_version,
)

from . import forms as f
from . import relations_form as rf
from .context import admin_url, can, current_admin, get_view, has_view, render_page
from .listing import Cell, capped_count, cell, fetch_page, parse_list_args
from .registry import (
    ModelView,
    format_pk,
    live_where,
    load_record,
    model_pk,
    name_like,
    parse_pk,
)
from .saving import commit_form, form_problem, form_status
from .values import enum_choices

Page = tuple[str, int] | Response
#: How many changesets the index shows under "Recent changes", and records of each.
RECENT_CHANGES = 10
RECENT_RECORDS = 5


def _record(view: ModelView, pk: str) -> Any:
    """The live record for a URL's pk, or a 400 (malformed) / 404 (unknown) page."""
    try:
        key = parse_pk(view.model, pk)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{pk[:80]!r} is not a valid {view.singular.lower()} id.") from None
    obj = load_record(current_admin().session(), view.model, key)
    if obj is None:
        raise NotFound(f"There is no {view.singular.lower()} with id {pk[:80]!r} (it may have "
                       "been deleted).")
    return obj


def _current_number(view: ModelView, obj: Any) -> int | None:
    if not view.versioned:
        return None
    version = latest_version(current_admin().session(), view.model, model_pk(obj))
    return None if version is None else version.number


def _latest_number(view: ModelView, key: tuple[Any, ...]) -> int | None:
    if not view.versioned:
        return None
    version = latest_version(current_admin().session(), view.model, key)
    return None if version is None else version.number


def _state_label(view: ModelView | None, state: dict[str, Any], pk: tuple[Any, ...]) -> str:
    name = name_like(state.get)
    if name is not None:
        return name
    return f"{view.singular if view is not None else 'Record'} #{format_pk(pk)}"


# -- pages ---------------------------------------------------------------------------------


def index() -> Page:
    """The models with capped row counts and the latest changesets."""
    admin = current_admin()
    session = admin.session()
    cap = current_app.config["VERSIONED_ADMIN_COUNT_LIMIT"]
    models = [
        (view, *capped_count(session, view.model, live_where(view.model), cap))
        for view in admin.views.values()
    ]
    versioned = [view.model for view in admin.views.values() if view.versioned]
    recent = []
    if versioned:
        for changeset, versions in changesets(session, versioned, limit=RECENT_CHANGES):
            entries = []
            for version in versions[:RECENT_RECORDS]:
                view = admin.nearest_view(version.model)
                entries.append({
                    "version": version,
                    "view": view,
                    "pk": format_pk(version.pk),
                    "label": _state_label(view, version.state, version.pk),
                })
            more = max(0, len(versions) - RECENT_RECORDS)
            recent.append({"changeset": changeset, "entries": entries, "more": more})
    verified = last_verification(session) if versioned else None
    return render_page(admin.index_template, models=models, recent=recent,
                       show_verified=bool(versioned), verified=verified)


def list_view(model: str) -> Page:
    """One page of a model's records with sort, search and filters."""
    view = get_view(model)
    admin = current_admin()
    config = current_app.config
    req = parse_list_args(view, request.args)
    page_size = view.page_size or config["VERSIONED_ADMIN_PAGE_SIZE"]
    page = fetch_page(admin.session(), view, req, page_size, config["VERSIONED_ADMIN_COUNT_LIMIT"])
    if not page.rows and req.page > 1:
        req.notices.append(f"Page {req.page} is past the end of this list.")
    rows = _list_rows(view, page.rows)
    filter_fields = _filter_fields(admin.session(), view, req.raw_filters)
    return render_page(
        view.list_template or admin.list_template,
        view=view,
        req=req,
        page=page,
        rows=rows,
        filter_fields=filter_fields,
    )


@dataclasses.dataclass
class Row:
    """One list row: its cells and the links of its actions (None when not allowed)."""

    cells: list[Cell]
    edit_url: str
    delete_url: str | None
    history_url: str | None


def _list_rows(view: ModelView, objects: list[Any]) -> list[Row]:
    """The list rows; each URL is built once per page and filled per row (url_for is slow)."""
    placeholder = "__pk__"

    def link(endpoint: str, allowed: bool) -> Callable[[str], str | None]:
        if not allowed:
            return lambda pk: None
        template = admin_url(endpoint, model=view.slug, pk=placeholder)
        return lambda pk: template.replace(placeholder, quote(pk, safe="!$&'()*+,:;=@"))

    edit = link("edit_view", True)
    delete = link("delete_view", can("delete", view))
    history = link("history_view", has_view("history_view") and view.versioned)
    rows = []
    for obj in objects:
        pk = format_pk(model_pk(obj))
        rows.append(Row([cell(view, obj, key) for key in view.list_columns],
                        edit(pk) or "", delete(pk), history(pk)))
    return rows


def _filter_fields(session: Session, view: ModelView, raw: dict[str, str]) -> list[dict[str, Any]]:
    """What the filter bar shows for each filter: a select (with choices) or a text input."""
    result = []
    for key in view.filters:
        info = view.info(key)
        choices: list[tuple[str, str]] | None = None
        input_type = "text"
        if info.relation is not None and len(info.relation.remote_side) == 1:
            (remote,) = info.relation.remote_side
            choices = f.relation_choices(session, view, info.target, remote)
        elif info.column is not None:
            type_ = info.column.type
            if isinstance(type_, sa.Boolean):
                choices = [("true", "Yes"), ("false", "No")]
            elif isinstance(type_, sa.Enum):
                choices = enum_choices(type_)
            elif isinstance(type_, sa.Date):
                input_type = "date"
            elif isinstance(type_, sa.Integer | sa.Numeric):
                input_type = "number"
        result.append({"key": key, "name": f"f_{key}", "label": view.label_for(key),
                       "value": raw.get(key, ""), "choices": choices, "type": input_type})
    return result


def create_view(model: str) -> Page:
    """The create form (GET) and saving a new record (POST)."""
    view = get_view(model)
    if not can("create", view):
        raise Forbidden(f"New {view.label} records cannot be added here.")
    session = current_admin().session()
    posted = request.method == "POST"
    form, items = f.build_form(view, True, request.form if posted else None)
    f.prepare_relations(session, view, form)
    editors = rf.build_editors(session, view, None, request.form if posted else None, True)
    status = 200
    message = None
    if posted:
        # the database checks run even when other fields are wrong: every message at once
        checks = [form.validate(), f.check_form(session, view, form, None)]
        if all(checks) and not any(e.invalid for e in editors):
            obj = view.model()
            with session.no_autoflush:
                f.apply_form(session, view, form, obj, creating=True)
                rf.apply_editors(obj, editors, session)
            session.add(obj)
            message = commit_form(form)
            if message is None:
                flash(f"Added {view.label_of(obj)}.", "success")
                return _after_save(view, obj)
        status = form_status(form)
    return _render_form(view, form, items, None, status, message, editors=editors)


def edit_view(model: str, pk: str) -> Page:
    """The edit form (GET) and saving changes (POST), refusing stale edits."""
    view = get_view(model)
    obj = _record(view, pk)
    session = current_admin().session()
    current = _current_number(view, obj)
    posted = request.method == "POST"
    if posted and not can("edit", view):
        raise Forbidden(f"{view.label} records cannot be changed here.")
    form, items = f.build_form(view, False, request.form if posted else None, obj, current)
    f.prepare_relations(session, view, form)
    editors = rf.build_editors(session, view, obj, request.form if posted else None, False)
    status, message, conflict = 200, None, None
    # inline rows have no place on the conflict page (each carries its own version): with row
    # edits a conflict brings the form back instead; decided now, while the rows are loaded
    rows_edited = posted and any(e.inline_edits for e in editors)
    if posted:
        valid = all([form.validate(), f.check_form(session, view, form, obj)])
        valid = valid and not any(e.invalid for e in editors)
        current_text = "" if current is None else str(current)
        # read from the request itself: a POST without the field must not pass as up to date
        if view.versioned and request.form.get(f.BASE_VERSION_FIELD) != current_text:
            conflict = current
            form[f.BASE_VERSION_FIELD].data = current_text
            status = 409
            if valid and not rows_edited and (page := _conflict_page(view, obj, form)) is not None:
                return page
        elif valid:
            if view.versioned:
                # checked again inside the flush (also an autoflush), after the row lock: two
                # saves racing on one record cannot both pass the check above
                expect_version(session, obj, current)
            # one save, one flush: an autoflush between the columns and the collections
            # would split this save into two versions
            with session.no_autoflush:
                f.apply_form(session, view, form, obj, creating=False)
                relations_changed = rf.apply_editors(obj, editors, session)
            if not relations_changed and not session.is_modified(obj):
                session.rollback()
                flash("Nothing changed, so no new version was saved.", "info")
                return _after_save(view, obj)
            key = model_pk(obj)
            message = commit_form(form)
            if message is None:
                flash(f"Saved {view.label_of(obj)}.", "success")
                return _after_save(view, obj)
            status = 422
            moved = _latest_number(view, key)
            if view.versioned and moved != current:
                # lost a race: another save committed between our check and our commit
                conflict, message, status = moved, None, 409
                form[f.BASE_VERSION_FIELD].data = "" if moved is None else str(moved)
                obj = _record(view, pk)
                if not rows_edited and (page := _conflict_page(view, obj, form)) is not None:
                    return page
        else:
            status = form_status(form)
            if status == 422 and any(e.stale for e in editors):
                status = 409  # a related row moved on: the same lost race as the record's own
    return _render_form(view, form, items, obj, status, message, conflict=conflict, pk=pk,
                        editors=editors)


def _conflict_page(view: ModelView, obj: Any, form: FlaskForm) -> Page | None:
    """Their change and yours side by side, when this admin has the conflict page."""
    if not has_view("resolve_view"):
        return None
    from .conflicts import conflict_page

    return conflict_page(view, obj, form, request.form.get(f.BASE_VERSION_FIELD))


def delete_view(model: str, pk: str) -> Page:
    """Confirm (GET) and delete (POST); the engine keeps the deleted state as a version."""
    view = get_view(model)
    obj = _record(view, pk)
    if not can("delete", view):
        raise Forbidden(f"You are not allowed to delete {view.label} records.")
    admin = current_admin()
    session = admin.session()
    form = DeleteForm(formdata=request.form if request.method == "POST" else None)
    label = view.label_of(obj)
    status, message = 200, None
    if request.method == "POST":
        if form.validate():
            session.delete(obj)
            message = commit_form(form)
            if message is None:
                flash(f"Deleted {label}.", "success")
                return redirect(admin_url("list_view", model=view.slug))
            status = 409
        else:
            status = form_status(form)
            message = form_problem(form)
        obj = _record(view, pk)
    cells = [(view.label_for(k), cell(view, obj, k)) for k in view.list_columns]
    return render_page(
        view.delete_template or admin.delete_template,
        status=status,
        view=view,
        obj=obj,
        pk=pk,
        label=label,
        cells=cells,
        form=form,
        message=message,
    )


class DeleteForm(FlaskForm):
    """The confirmation form of a delete: a CSRF token and an optional reason."""

    change_reason = fields.StringField(
        "Reason for change", [validators.Optional(), validators.Length(max=500)]
    )


def not_found(rest: str = "") -> Page:
    """Any other URL under the admin prefix: 405 if another method would match, else 404."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    valid = []
    for method in ("GET", "POST"):
        try:
            endpoint, _args = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != request.endpoint:
            valid.append(method)
    if valid:
        raise MethodNotAllowed(valid, f"This page does not accept {request.method} requests.")
    raise NotFound("There is no such page in this admin.")


# -- helpers -------------------------------------------------------------------------------


def _after_save(view: ModelView, obj: Any) -> Response:
    """Redirect after a save (PRG): back to the list, or the form for the chosen button."""
    action = request.form.get("save", "")
    if action == "continue" and can("edit", view):
        return redirect(admin_url("edit_view", model=view.slug, pk=format_pk(model_pk(obj))))
    if action == "another" and can("create", view):
        return redirect(admin_url("create_view", model=view.slug))
    return redirect(admin_url("list_view", model=view.slug))


def _render_form(
    view: ModelView,
    form: FlaskForm,
    items: list[f.FormItem],
    obj: Any | None,
    status: int,
    message: str | None,
    *,
    conflict: int | None = None,
    pk: str | None = None,
    editors: list[rf.Editor] | None = None,
) -> Page:
    if message is None and status in (400, 422):
        message = form_problem(form)
        if not form.errors and any(e.invalid for e in editors or []):
            message = "Please correct the marked fields."
    return render_page(
        view.form_template or current_admin().form_template,
        status=status,
        view=view,
        form=form,
        items=items,
        obj=obj,
        pk=pk,
        creating=obj is None,
        label=view.label_of(obj) if obj is not None else None,
        message=message,
        conflict=conflict,
        reason_field=form._fields.get(f.REASON_FIELD),
        base_field=form._fields.get(f.BASE_VERSION_FIELD),
        editors=editors or [],
    )


def add_crud_routes(bp: Blueprint) -> None:
    """Register the CRUD pages on an admin blueprint (history pages add their own)."""
    bp.add_url_rule("/", "index", index)
    bp.add_url_rule("/<model>/", "list_view", list_view)
    bp.add_url_rule("/<model>/new", "create_view", create_view, methods=["GET", "POST"])
    bp.add_url_rule("/<model>/<pk>/edit", "edit_view", edit_view, methods=["GET", "POST"])
    bp.add_url_rule("/<model>/<pk>/delete", "delete_view", delete_view, methods=["GET", "POST"])
    bp.add_url_rule("/<path:rest>", "not_found", not_found, methods=["GET", "POST"])
