"""Inline editing of one-to-many relations: one form row per related record, in the parent's form.

A row is a prefixed sub-form of the related model's generated form (no CSRF token of its own:
the page's form carries it). Existing rows carry the related record's key and version, so a
row someone else changed meanwhile is refused with a message instead of being overwritten.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask_wtf import FlaskForm
from sqlalchemy.orm import RelationshipDirection, RelationshipProperty, Session
from sqlalchemy.orm.exc import ObjectDeletedError
from wtforms import fields

from versioned_admin.versioning import expect_version, model_info
from versioned_admin.versioning.writer import latest_numbers

from . import forms as f
from .registry import ModelView, attr_key, format_pk, model_pk

#: Most related records edited inline (more: the read-only list); blank rows offered for adding.
INLINE_LIMIT = 100
NEW_ROWS = 1
#: The prefix index of the hidden row the page's script copies for "Add another".
TEMPLATE_INDEX = "__index__"


@dataclasses.dataclass
class InlineRow:
    """One related record's row (``obj`` None: a new one)."""

    prefix: str
    form: FlaskForm
    items: list[f.FormItem]
    obj: Any | None = None
    pk: str = ""
    version: str = ""
    remove: bool = False
    blank: bool = False
    error: str | None = None
    stale: bool = False

    @property
    def new(self) -> bool:
        """Whether the row adds a record."""
        return self.obj is None and not self.pk

    def cell(self, key: str) -> f.FormItem | None:
        """The row's item for a column (None: the column is not on this row's form)."""
        return next((item for item in self.items if item.key == key), None)

    @property
    def invalid(self) -> bool:
        """Whether the row has an error of its own or in a field."""
        return self.error is not None or (not self.remove and not self.blank
                                          and bool(self.form.errors))


@dataclasses.dataclass
class InlineSet:
    """Everything an inline editor renders: column headers, rows, and the row to copy."""

    view: ModelView
    columns: list[tuple[str, str]]  # (key, label)
    rows: list[InlineRow]
    template: InlineRow
    new_count: int

    @property
    def linkable(self) -> bool:
        """Whether the related model has pages of its own in this admin (history links)."""
        return self.view.peers.get(self.view.model) is self.view


def is_inline(view: ModelView, rel: RelationshipProperty[Any]) -> bool:
    """Whether a one-to-many relation is edited inline (named in ``inline`` or owning its rows)."""
    if rel.direction is not RelationshipDirection.ONETOMANY or rel.viewonly:
        return False
    if view.inline is not None:
        return rel.key in view.inline
    return rel.cascade.delete_orphan


def child_view(view: ModelView, rel: RelationshipProperty[Any]) -> ModelView:
    """The related model's registered view, or one made for the inline rows."""
    target = rel.mapper.class_
    peer = view.peers.get(target)
    if peer is not None:
        return peer
    made: ModelView | None = view.inline_views.get(rel.key)
    if made is None:
        made = ModelView(target, slug=f"{view.slug}-{rel.key}".replace("_", "-").lower())
        made.peers = view.peers
        view.inline_views[rel.key] = made
    return made


def _back_keys(child: ModelView, rel: RelationshipProperty[Any]) -> frozenset[str]:
    """The related model's attributes that point back at the parent (set by the relation)."""
    remote = set(rel.remote_side)
    keys = {attr_key(child.model, col) for col in remote}
    for info in child.infos.values():
        if info.relation is not None and remote & set(info.relation.local_columns):
            keys.add(info.key)
    return frozenset(keys)


def _versions(session: Session, child: ModelView, objs: list[Any]) -> dict[tuple[Any, ...], int]:
    info = model_info(child.model)
    if info is None or not objs:
        return {}
    return latest_numbers(session, info, [model_pk(o) for o in objs])


def build_inline(
    session: Session,
    view: ModelView,
    rel: RelationshipProperty[Any],
    name: str,
    obj: Any | None,
    formdata: Any | None,
) -> InlineSet | None:
    """The inline rows of one relation (with ``formdata``: parsed and checked); None if too many."""
    child = child_view(view, rel)
    exclude = _back_keys(child, rel)
    existing = [] if obj is None else list(getattr(obj, rel.key))
    if len(existing) > INLINE_LIMIT:
        return None
    current = _versions(session, child, existing)

    def row_form(prefix: str, data: Any | None, record: Any | None) -> tuple[FlaskForm, Any]:
        form, items = f.build_form(child, record is None, data, record, prefix=prefix,
                                   exclude=exclude)
        f.prepare_relations(session, child, form)
        return form, items

    rows: list[InlineRow] = []
    if formdata is None:
        for i, record in enumerate(existing):
            prefix, pk = f"{name}-{i}-", model_pk(record)
            form, items = row_form(prefix, None, record)
            rows.append(InlineRow(prefix, form, items, record, format_pk(pk),
                                  _text(current.get(pk))))
        new_count = NEW_ROWS
        for j in range(new_count):
            prefix = f"{name}-new-{j}-"
            form, items = row_form(prefix, None, None)
            rows.append(InlineRow(prefix, form, items, blank=True))
    else:
        by_pk = {format_pk(model_pk(r)): r for r in existing}
        for i in range(INLINE_LIMIT):
            prefix = f"{name}-{i}-"
            pk_text = formdata.get(prefix + "pk")
            if pk_text is None:
                break
            record = by_pk.get(pk_text)
            form, items = row_form(prefix, formdata, record)
            row = InlineRow(prefix, form, items, record, pk_text,
                            str(formdata.get(prefix + "version", "")),
                            remove=bool(formdata.get(prefix + "del")))
            _check_existing(session, child, row, current)
            rows.append(row)
        new_count = 0
        for j in range(INLINE_LIMIT):
            prefix = f"{name}-new-{j}-"
            if formdata.get(prefix + "present") is None:
                break
            new_count += 1
            form, items = row_form(prefix, formdata, None)
            row = InlineRow(prefix, form, items, blank=_is_blank(form, formdata))
            if not row.blank:
                _validate(session, child, form, None)
            rows.append(row)
    prefix = f"{name}-new-{TEMPLATE_INDEX}-"
    template_form, template_items = row_form(prefix, None, None)
    template = InlineRow(prefix, template_form, template_items, blank=True)
    columns: dict[str, str] = {}
    for row in [*rows, template]:
        columns.update((item.key, item.label) for item in row.items)
    return InlineSet(child, list(columns.items()), rows, template, new_count)


def _check_existing(
    session: Session, child: ModelView, row: InlineRow, current: dict[tuple[Any, ...], int]
) -> None:
    """Validate a posted existing row; refuse it if its record is gone or moved on."""
    if row.obj is None:
        if not row.remove:
            row.error = ("Someone removed this record meanwhile, so your row was not saved. "
                         "Tick “remove” to let it go, or type it into a new row to add it back.")
            row.stale = True  # a lost race like a changed row: 409, not a typing mistake
        return
    moved = current.get(model_pk(row.obj))
    if child.versioned and row.version != _text(moved):
        row.error = (f"Someone else changed this record meanwhile (it is now at version "
                     f"{moved}), so your row was not saved. Save again to replace their "
                     "values with the ones below.")
        row.version = _text(moved)
        row.stale = True
        return
    if not row.remove:
        _validate(session, child, row.form, row.obj)


def _validate(session: Session, child: ModelView, form: FlaskForm, record: Any | None) -> None:
    """Run the field checks and the database checks (both: every message at once)."""
    form.validate()
    f.check_form(session, child, form, record)


def _text(number: int | None) -> str:
    return "" if number is None else str(number)


def _is_blank(form: FlaskForm, formdata: Any) -> bool:
    """Whether a new row was left as offered (nothing typed, selects at their first option)."""
    for field in form:
        raw = formdata.get(field.name)
        if isinstance(field, fields.BooleanField):
            if raw is not None:
                return False
            continue
        text = "" if raw is None else str(raw).strip()
        if text in ("", _first_choice(field)):
            continue
        return False
    return True


def _first_choice(field: fields.Field) -> str:
    choices = getattr(field, "choices", None)
    if not choices:
        return ""
    first = choices[0]
    value = first[0] if isinstance(first, tuple) else getattr(first, "value", "")
    return str(value)


def apply_inline(session: Session, obj: Any, key: str, inline: InlineSet) -> bool:
    """Put the checked rows on the record: edit, remove, add; whether anything changed."""
    collection = getattr(obj, key)
    changed = False
    child = inline.view
    for row in inline.rows:
        if row.invalid:
            continue
        if row.obj is not None and row.remove:
            collection.remove(row.obj)
            changed = True
        elif row.obj is not None:
            f.apply_form(session, child, row.form, row.obj, creating=False)
            if session.is_modified(row.obj):
                changed = True
                if child.versioned:
                    # checked again inside the flush: a save racing ours on this row loses
                    expect_version(session, row.obj, int(row.version) if row.version else None)
        elif row.new and not row.blank:
            record = child.model()
            f.apply_form(session, child, row.form, record, creating=True)
            collection.append(record)
            changed = True
    return changed


def has_edits(inline: InlineSet) -> bool:
    """Whether the posted rows would add, remove or change any related record."""
    for row in inline.rows:
        if row.remove or (row.new and not row.blank):
            return True
        if row.obj is None or row.invalid:
            continue
        try:
            for item in row.items:
                if item.field is not None and f.differs(inline.view.info(item.key), item.field,
                                                        getattr(row.obj, item.key)):
                    return True
        except ObjectDeletedError:  # deleted by someone else since the form was read
            return True
    return False
