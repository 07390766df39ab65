"""WTForms forms generated from a model's columns, and moving values between form and record."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask_wtf import FlaskForm
from markupsafe import escape
from sqlalchemy.orm import Session
from wtforms import fields, validators

from .fields import (
    RelationField,
    field_class_for,
    has_default,
    make_field,
    no_nul,
)
from .registry import (
    ColumnInfo,
    ModelView,
    attr_key,
    live_where,
)
from .values import enum_from_text, enum_label

#: Related tables with at most this many rows get a select; larger ones an id input.
SELECT_LIMIT = 100
#: Names of the form's own fields (never model columns).
REASON_FIELD = "change_reason"
BASE_VERSION_FIELD = "base_version"
_RESERVED = set(dir(FlaskForm)) | {REASON_FIELD, BASE_VERSION_FIELD, "csrf_token", "save", "meta"}


def field_name(key: str) -> str:
    """The form field name of a model attribute (prefixed if it would clash with the form's own)."""
    return f"col_{key}" if key in _RESERVED or key.startswith("_") else key


# -- building forms ------------------------------------------------------------------------


@dataclasses.dataclass
class FormItem:
    """One row of the form: an editable field or a read-only value."""

    key: str
    label: str
    field: fields.Field | None = None
    value: str = ""
    editable: bool = True


def is_editable(info: ColumnInfo) -> bool:
    """Whether the admin knows how to edit this attribute with a form field."""
    if info.relation is not None:
        return len(info.relation.local_columns) == 1 and len(info.relation.remote_side) == 1
    return info.column is not None and field_class_for(info.column) is not None


def build_form(
    view: ModelView,
    creating: bool,
    formdata: Any | None,
    obj: Any | None = None,
    base_version: int | None = None,
    *,
    prefix: str = "",
    exclude: frozenset[str] = frozenset(),
) -> tuple[FlaskForm, list[FormItem]]:
    """A bound form for creating or editing, and the items to render in order.

    With a ``prefix`` the form is one row of an inline editor: no CSRF token, reason or
    base version of its own (the page's form carries them).
    """
    attrs: dict[str, Any] = {}
    items: list[FormItem] = []
    from .relations_form import extra_kind

    nested = bool(prefix)
    for key in view.form_columns(creating):
        if key in exclude or extra_kind(view, key) is not None:
            continue  # collections and maps: relations_form.Editor
        info = view.info(key)
        if view.is_readonly(key, creating) or not is_editable(info):
            if not creating:
                value = _display(view, obj, info)
                items.append(FormItem(key, view.label_for(key), value=value, editable=False))
            continue
        attrs[field_name(key)] = make_field(view, info, creating)
        items.append(FormItem(key, view.label_for(key)))
    if view.versioned and not nested:
        attrs[REASON_FIELD] = fields.StringField(
            "Reason for change",
            [validators.Optional(), validators.Length(max=500), no_nul],
            description="Optional: saved with this version and shown in the history.",
        )
        if not creating:
            attrs[BASE_VERSION_FIELD] = fields.HiddenField()
    form_class = type(f"{view.model.__name__}Form", (FlaskForm,), attrs)
    data = form_data(view, obj, creating) if obj is not None else {}
    if not creating and view.versioned and not nested:
        data[BASE_VERSION_FIELD] = "" if base_version is None else str(base_version)
    if nested:
        form = form_class(formdata=formdata, data=data, prefix=prefix, meta={"csrf": False})
    else:
        form = form_class(formdata=formdata, data=data)
    for item in items:
        if item.editable:
            item.field = form[field_name(item.key)]
    return form, items


def _display(view: ModelView, obj: Any | None, info: ColumnInfo) -> str:
    if obj is None:
        return ""
    value = getattr(obj, info.key, None)
    if value is None:
        return "—"
    if info.relation is not None:
        return view.label_of(value)
    return format_value(value)


def format_value(value: Any) -> str:
    """A value as text for people (lists, read-only fields)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return enum_label(value)


def to_form(info: ColumnInfo, value: Any) -> Any:
    """A record's value as the form field holds it."""
    if info.relation is not None:
        if value is None:
            return None
        (remote,) = info.relation.remote_side
        return getattr(value, attr_key(info.target, remote))
    column = info.column
    if value is None or column is None:
        return value
    type_ = column.type
    if isinstance(type_, sa.Enum):
        return value.name if hasattr(value, "name") and type_.enum_class else str(value)
    if isinstance(type_, sa.Boolean) and column.nullable:
        return "true" if value else "false"
    if isinstance(type_, sa.DateTime) and isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.replace(microsecond=0)
    if isinstance(type_, sa.Uuid):
        return str(value)
    return value


def from_form(info: ColumnInfo, field: fields.Field) -> Any:
    """The value a record gets from a validated field."""
    value = field.data
    column = info.column
    if column is None:
        return value
    type_ = column.type
    if isinstance(type_, sa.Enum):
        return None if value in ("", None) else enum_from_text(type_, value)
    if isinstance(type_, sa.Boolean) and column.nullable:
        return {"true": True, "false": False}.get(value)
    if isinstance(type_, sa.DateTime) and isinstance(value, datetime) and type_.timezone:
        return value.replace(tzinfo=UTC)
    if isinstance(type_, sa.Uuid):
        return None if value in ("", None) else uuid.UUID(str(value).strip())
    if isinstance(type_, sa.String) and not isinstance(type_, sa.JSON) and value == "":
        return None if column.nullable else ""
    if isinstance(value, str):
        return _lf(value)
    return value


def _lf(text: str) -> str:
    """Browsers submit textarea line breaks as CRLF; store them as LF."""
    return text.replace("\r\n", "\n")


def _same(info: ColumnInfo, old: Any, new: Any) -> bool:
    """Whether a submitted value equals the record's (as the form shows it, CRLF == LF)."""
    old, new = to_form(info, old), to_form(info, new)
    if isinstance(old, str) and isinstance(new, str):
        return _lf(old) == _lf(new)
    return bool(old == new)


def differs(info: ColumnInfo, field: fields.Field, current: Any) -> bool:
    """Whether a validated field would change the record's current value."""
    if isinstance(field, RelationField):
        return bool(to_form(info, current) != field.data)
    return not _same(info, current, from_form(info, field))


def form_data(view: ModelView, obj: Any, creating: bool) -> dict[str, Any]:
    """The form's initial data from a record."""
    data: dict[str, Any] = {}
    for key in view.form_columns(creating):
        info = view.info(key)
        if is_editable(info):
            data[field_name(key)] = to_form(info, getattr(obj, key, None))
    return data


def prepare_relations(session: Session, view: ModelView, form: FlaskForm) -> None:
    """Give relation fields their choices (small tables) or the current record's label."""
    for field in form:
        if not isinstance(field, RelationField):
            continue
        field.choices = relation_choices(session, view, field.target, field.remote)
        if field.choices is None and field.data is not None:
            related = load_related(session, field)
            field.current_label = view.label_of(related) if related else None


def relation_choices(
    session: Session, view: ModelView, target: type, remote: sa.ColumnElement[Any]
) -> list[tuple[str, str]] | None:
    """(key, label) of every live ``target`` record, by label; None if there are too many."""
    live = live_where(target)
    stmt: sa.Select[Any] = sa.select(target).where(*live).limit(SELECT_LIMIT + 1)
    rows = list(session.execute(stmt).scalars())
    if len(rows) > SELECT_LIMIT:
        return None
    remote_key = attr_key(target, remote)
    choices = [(str(getattr(row, remote_key)), view.label_of(row)) for row in rows]
    return sorted(choices, key=lambda choice: choice[1].lower())


def load_related(session: Session, field: RelationField) -> Any | None:
    """The live related record a relation field points at, or None."""
    if field.data is None:
        return None
    where = [field.remote == field.data, *live_where(field.target)]
    stmt: sa.Select[Any] = sa.select(field.target).where(*where)
    return session.execute(stmt.limit(1)).scalars().first()


def check_form(session: Session, view: ModelView, form: FlaskForm, obj: Any | None) -> bool:
    """Database checks after WTForms validation: related records exist, unique values are free."""
    ok = True
    for field in form:
        if isinstance(field, RelationField) and field.data is not None and not field.errors:
            if load_related(session, field) is None:
                field.errors.append("There is no such record.")
                ok = False
    for key in view.form_columns(obj is None):
        info = view.info(key)
        name = field_name(key)
        if info.column is None or name not in form or form[name].errors:
            continue
        if not _is_unique(info.column):
            continue
        value = from_form(info, form[name])
        if value is None or (obj is not None and getattr(obj, key) == value):
            continue
        where = [info.column == value, *live_where(view.model)]
        if obj is not None:
            pk = dict(zip(view.pk_columns, _pk_values(view, obj), strict=True))
            where.append(sa.not_(sa.and_(*(col == val for col, val in pk.items()))))
        taken: sa.Select[Any] = sa.select(sa.literal_column("1")).select_from(view.model)
        if session.execute(taken.where(*where).limit(1)).first() is not None:
            form[name].errors.append(f"Another record already has this {view.label_for(key)}.")
            ok = False
    return ok


def _pk_values(view: ModelView, obj: Any) -> list[Any]:
    return [getattr(obj, attr_key(view.model, col)) for col in view.pk_columns]


def _is_unique(column: sa.Column[Any]) -> bool:
    if column.unique:
        return True
    table = column.table
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and list(constraint.columns) == [column]:
            return True
    return any(idx.unique and list(idx.columns) == [column] for idx in table.indexes)


def apply_form(
    session: Session, view: ModelView, form: FlaskForm, obj: Any, creating: bool
) -> None:
    """Copy changed values from a validated form onto the record (read-only fields untouched)."""
    for key in view.form_columns(creating):
        info = view.info(key)
        name = field_name(key)
        if view.is_readonly(key, creating) or name not in form:
            continue
        field = form[name]
        if isinstance(field, RelationField):
            current = to_form(info, getattr(obj, key))
            if creating or current != field.data:
                setattr(obj, key, load_related(session, field))
            continue
        value = from_form(info, field)
        if creating:
            if value is None and info.column is not None and has_default(info.column):
                continue
            setattr(obj, key, value)
        elif not _same(info, getattr(obj, key), value):
            setattr(obj, key, value)


def describe(field: fields.Field) -> str:
    """Escaped help text for a field (relation fields add the current record's label)."""
    parts = [str(escape(field.description))] if field.description else []
    if isinstance(field, RelationField) and field.choices is None:
        if field.current_label:
            parts.append(f"Currently: {escape(field.current_label)}.")
        name = escape(field.target.__name__)
        parts.append(f"Enter the id of a {name} record (too many to list).")
    return " ".join(parts)
