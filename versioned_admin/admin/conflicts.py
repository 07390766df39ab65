"""Stale edits: their change and yours side by side, a per-field choice, nothing typed lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, request
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response
from wtforms import fields

from versioned_admin.diff import TextDiff, display_value, text_diff
from versioned_admin.versioning import (
    Version,
    VersionNotFound,
    expect_version,
    get_version,
    latest_version,
)

from . import forms as f
from . import relations_form as rf
from .conflict_relations import apply_relation_choices, relation_conflicts
from .context import admin_url, can, current_admin, get_view, render_page
from .fields import RelationField
from .history_support import related_label, session, time_helpers
from .registry import ModelView, attr_key, format_pk, model_pk

Page = tuple[str, int] | Response
MINE = "mine-"
CHOICE = "choice-"
#: Kinds of a field in a conflict.
SAME, YOURS, THEIRS, BOTH = "same", "yours", "theirs", "both"
CHANGED_AGAIN = ("The record changed again while you were choosing. Nothing was saved; check the "
                 "new values and choose again.")


class ResolveForm(FlaskForm):
    """The conflict page's own fields: CSRF, the version shown as theirs, the version you had."""

    base_version = fields.HiddenField()
    mine_base = fields.HiddenField()


@dataclass
class ConflictField:
    """One field of the conflict page."""

    key: str
    label: str
    kind: str
    base: str
    theirs: str
    mine: str
    text: TextDiff | None
    choice: str | None


def _fk_key(view: ModelView, key: str) -> str | None:
    rel = view.info(key).relation
    if rel is None:
        return None
    (local,) = rel.local_columns
    return attr_key(view.model, local)


def _state_value(view: ModelView, key: str, state: dict[str, Any]) -> Any:
    """A state's value of a form attribute, as the form holds it."""
    fk = _fk_key(view, key)
    if fk is not None:
        return state.get(fk)
    return f.to_form(view.info(key), state.get(key))


def _mine_value(view: ModelView, key: str, form: FlaskForm) -> Any:
    field = form[f.field_name(key)]
    if isinstance(field, RelationField):
        return field.data
    return f.to_form(view.info(key), f.from_form(view.info(key), field))


def _same(a: Any, b: Any) -> bool:
    try:
        if a == b:
            return True
    except Exception:  # incomparable types
        pass
    return a is not None and b is not None and display_value(a) == display_value(b)


def _shown(view: ModelView, key: str, value: Any) -> str:
    rel = view.info(key).relation
    if rel is not None and value is not None:
        return related_label(view, view.info(key).target, attr_key(view.info(key).target,
                            next(iter(rel.remote_side))), value)
    return display_value(value)


def _editable_keys(view: ModelView, form: FlaskForm) -> list[str]:
    return [k for k in view.form_columns(False)
            if not view.is_readonly(k, False) and f.field_name(k) in form]


def classify(view: ModelView, form: FlaskForm, base: Version, theirs: Version,
             choices: dict[str, str] | None = None) -> list[ConflictField]:
    """Every form field that you or they changed since ``base``, with its kind."""
    out = []
    for key in _editable_keys(view, form):
        b = _state_value(view, key, base.state)
        t = _state_value(view, key, theirs.state)
        m = _mine_value(view, key, form)
        if _same(m, t):
            continue
        if _same(t, b):
            kind = YOURS
        elif _same(m, b):
            kind = THEIRS
        else:
            kind = BOTH
        bs, ts, ms = _shown(view, key, b), _shown(view, key, t), _shown(view, key, m)
        # Both changed: theirs against yours. Only one side: that side's change from the base.
        left, right = {YOURS: (bs, ms), THEIRS: (bs, ts)}.get(kind, (ts, ms))
        texts = any(isinstance(v, str) for v in (b, t, m))
        diff = text_diff(left, right) if texts else None
        out.append(ConflictField(key, view.label_for(key), kind, bs, ts, ms, diff,
                                 (choices or {}).get(key)))
    return out


def _base(view: ModelView, obj: Any, raw: str | None) -> Version | None:
    if raw is None or not raw.strip().isdigit() or len(raw.strip()) > 18:
        return None
    try:
        return get_version(session(), view.model, model_pk(obj), int(raw))
    except VersionNotFound:
        return None


def _mine_fields(formdata: Any) -> list[tuple[str, str]]:
    """The user's posted values (every key but CSRF and the version), to carry as hidden fields."""
    skip = {"csrf_token", f.BASE_VERSION_FIELD}
    return [(k, v) for k in formdata for v in formdata.getlist(k) if k not in skip]


def conflict_page(view: ModelView, obj: Any, form: FlaskForm, base_raw: str | None,
                  *, message: str | None = None, choices: dict[str, str] | None = None,
                  mine: list[tuple[str, str]] | None = None) -> Page | None:
    """The 409 conflict page, or None when it cannot be built (then the edit form shows)."""
    base = _base(view, obj, base_raw)
    theirs = latest_version(session(), view.model, model_pk(obj))
    if base is None or theirs is None or base.number >= theirs.number:
        return None
    rows = classify(view, form, base, theirs, choices)
    mine = mine if mine is not None else _mine_fields(request.form)
    # collections and maps are read from the same carried input as the hidden fields below
    related = relation_conflicts(view, MultiDict(mine), base, theirs, choices)
    resolve = ResolveForm(formdata=None, data={"base_version": str(theirs.number),
                                               "mine_base": str(base.number)})
    return render_page(
        str(getattr(current_admin(), "conflict_template", "versioned_admin/conflict.html")),
        status=409,
        view=view,
        pk=format_pk(model_pk(obj)),
        label=view.label_of(obj),
        base=base,
        theirs=theirs,
        rows=rows,
        related=related,
        conflicts=[r for r in rows if r.kind == BOTH],
        mine=mine,
        form=resolve,
        message=message,
        **time_helpers(),
    )


def resolve_view(model: str, pk: str) -> Page:
    """Save the user's per-field choices (POST from the conflict page), unless it changed again."""
    from .saving import commit_form
    from .views import _record, _render_form

    view = get_view(model)
    obj = _record(view, pk)
    if not can("edit", view) or not view.versioned:
        raise NotFound("This record cannot be edited here.")
    resolve = ResolveForm(formdata=request.form)
    mine = [(k[len(MINE):], v) for k in request.form for v in request.form.getlist(k)
            if k.startswith(MINE)]
    choices = {k[len(CHOICE):]: request.form[k] for k in request.form if k.startswith(CHOICE)}
    current = latest_version(session(), view.model, model_pk(obj))
    current_no = "" if current is None else str(current.number)
    formdata: MultiDict[str, str] = MultiDict(mine)
    formdata[f.BASE_VERSION_FIELD] = current_no
    if "csrf_token" in request.form:
        formdata["csrf_token"] = request.form["csrf_token"]
    form, items = f.build_form(view, False, formdata, obj, current.number if current else None)
    f.prepare_relations(session(), view, form)
    base_raw = resolve.mine_base.data

    def again(message: str, status: int = 409) -> Page | None:
        """The conflict page once more, with the carried input and choices, and why."""
        page = conflict_page(view, obj, form, base_raw, choices=choices, mine=mine,
                             message=message)
        return (page[0], status) if isinstance(page, tuple) else page

    def form_page(status: int, problem: str | None, conflict: int | None = None) -> Page:
        """The edit form instead; its collection and map editors keep what was typed."""
        editors = rf.build_editors(session(), view, obj, formdata, False)
        return _render_form(view, form, items, obj, status, problem, conflict=conflict, pk=pk,
                            editors=editors)

    if not resolve.validate() or not form.validate() or not f.check_form(session(), view, form,
                                                                         obj):
        if "csrf_token" in resolve.errors or "csrf_token" in form.errors:
            page = again("The form's security token was missing or has expired. Nothing was "
                         "saved; choose again.", 400)
            if page is not None:
                return page
        return form_page(422, None)
    if resolve.base_version.data != current_no:
        page = again(CHANGED_AGAIN)
        if page is not None:
            return page
    base = _base(view, obj, base_raw)
    if base is None or current is None:
        return form_page(409, None, current.number if current else None)
    rows = classify(view, form, base, current, choices)
    related = relation_conflicts(view, formdata, base, current, choices)
    missing = [r.label for r in rows if r.kind == BOTH and choices.get(r.key) not in (
        "mine", "theirs")] + related.missing()
    if missing:
        page = again("Choose whose value to keep for: " + ", ".join(missing), 422)
        if page is not None:
            return page
    problems = related.problems()
    if problems:
        return again("Nothing was saved: " + " ".join(problems), 422) or form_page(422, None)
    take = {r.key for r in rows if r.kind == YOURS or (r.kind == BOTH and
                                                       choices.get(r.key) == "mine")}
    expect_version(session(), obj, current.number)  # checked again inside the flush
    # one save, one flush: an autoflush between columns and collections would split the version
    with session().no_autoflush:
        _apply(view, form, obj, take)
        related_changed = apply_relation_choices(obj, related)
    if not related_changed and not session().is_modified(obj):
        session().rollback()
        flash("You kept every value of the newer version; nothing was saved.", "info")
        return redirect(admin_url("history_view", model=view.slug, pk=pk))
    problem = commit_form(form)
    if problem is not None:
        obj = _record(view, pk)  # rolled back: read it again (a 404 if it was deleted)
        moved = latest_version(session(), view.model, model_pk(obj))
        if moved is not None and moved.number != current.number:
            # lost a race between the check above and the commit: a new conflict, not an error
            page = again(CHANGED_AGAIN)
            if page is not None:
                return page
        return form_page(422, problem)
    flash(f"Saved {view.label_of(obj)} with your choices.", "success")
    return redirect(admin_url("history_view", model=view.slug, pk=pk))


def _apply(view: ModelView, form: FlaskForm, obj: Any, keys: set[str]) -> None:
    """Copy only the chosen fields from the validated form onto the record."""
    for key in keys:
        field = form[f.field_name(key)]
        if isinstance(field, RelationField):
            setattr(obj, key, f.load_related(session(), field))
        else:
            setattr(obj, key, f.from_form(view.info(key), field))
