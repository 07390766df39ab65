"""Form editors for collections (many-to-many, one-to-many) and versioned key/value maps."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import RelationshipDirection, RelationshipProperty, Session

from versioned_admin.diff import printable
from versioned_admin.versioning import model_info
from versioned_admin.versioning.maps import typed

from .forms import relation_choices
from .inline_form import InlineSet, apply_inline, build_inline, has_edits, is_inline
from .registry import ModelView, format_pk, live_where, model_pk, pk_columns
from .text_input import json_text, map_value_error
from .values import parse_value

#: Most ids a large-table many-to-many input accepts; most map rows read from one form.
MAX_IDS = 500
MAX_ROWS = 1000
#: Blank rows offered for new map keys; linked records listed for a one-to-many.
NEW_ROWS = 3
LIST_LIMIT = 50
KEY_LENGTH = 255
_INT_LIMIT = 2**63


@dataclasses.dataclass
class Choice:
    """One related record offered as a checkbox."""

    value: str
    label: str
    checked: bool


@dataclasses.dataclass
class MapRow:
    """One key/value row of a map editor (``new``: a blank row for adding a key)."""

    index: int
    key: str
    value: str
    remove: bool = False
    new: bool = False
    error: str | None = None


@dataclasses.dataclass
class Editor:
    """The editor of one collection or map attribute, as the form template renders it."""

    key: str
    label: str
    kind: str  # "many" (many-to-many), "inline"/"list" (one-to-many, read-only) or "map"
    choices: list[Choice] | None = None
    text: str = ""
    linked: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    more: bool = False
    rows: list[MapRow] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    wanted: Any = None
    inline: InlineSet | None = None

    @property
    def name(self) -> str:
        """The prefix of this editor's form field names."""
        return f"rel-{self.key}"

    @property
    def inline_edits(self) -> bool:
        """Whether this is an inline editor whose posted rows change something."""
        return self.inline is not None and has_edits(self.inline)

    @property
    def stale(self) -> bool:
        """Whether an inline row was changed by someone else since the form was read."""
        return self.inline is not None and any(row.stale for row in self.inline.rows)

    @property
    def invalid(self) -> bool:
        """Whether the editor or one of its rows has an error."""
        if self.inline is not None and any(row.invalid for row in self.inline.rows):
            return True
        return bool(self.errors) or any(row.error for row in self.rows)


def extra_kind(view: ModelView, key: str) -> str | None:
    """``"map"``, ``"many"`` or ``"list"`` for attributes these editors handle, else None."""
    info = model_info(view.model)
    if info is not None and key in info.maps:
        return "map"
    rel = view.mapper.relationships.get(key)
    if rel is None or not rel.uselist:
        return None
    single = len(pk_columns(rel.mapper.class_)) == 1
    if rel.direction is RelationshipDirection.MANYTOMANY and single and not rel.viewonly:
        return "many"
    return "inline" if is_inline(view, rel) else "list"


def build_editors(
    session: Session, view: ModelView, obj: Any | None, formdata: Any | None, creating: bool
) -> list[Editor]:
    """Editors for the form's collection and map attributes; with ``formdata``, parsed/checked."""
    editors: list[Editor] = []
    for key in view.form_columns(creating):
        kind = extra_kind(view, key)
        if kind is None:
            continue
        editor = Editor(key, view.label_for(key), kind)
        if kind == "map":
            _map_editor(editor, obj, formdata)
        elif kind == "many":
            _many_editor(session, view, editor, obj, formdata)
        elif kind == "inline":
            rel = _relation(view, key)
            editor.inline = build_inline(session, view, rel, editor.name, obj, formdata)
            if editor.inline is None:  # too many to edit here
                editor.kind = "list"
                _list_editor(view, editor, obj)
            elif formdata is not None:
                editor.wanted = True
        elif obj is not None:
            _list_editor(view, editor, obj)
        editors.append(editor)
    return editors


# -- many-to-many ----------------------------------------------------------------------------


def _relation(view: ModelView, key: str) -> RelationshipProperty[Any]:
    return view.mapper.relationships[key]


def _many_editor(
    session: Session, view: ModelView, editor: Editor, obj: Any | None, formdata: Any | None
) -> None:
    target = _relation(view, editor.key).mapper.class_
    (pk_col,) = pk_columns(target)
    current = [] if obj is None else list(getattr(obj, editor.key))
    chosen = {format_pk(model_pk(item)) for item in current}
    choices = relation_choices(session, view, target, pk_col)
    if formdata is not None:
        if choices is not None:
            texts = [t for t in formdata.getlist(editor.name) if isinstance(t, str)]
        else:
            editor.text = str(formdata.get(editor.name, ""))
            texts = [t.strip() for t in editor.text.split(",") if t.strip()]
        editor.wanted = _load_ids(session, target, texts, editor)
        chosen = set(texts)
    elif choices is None:
        editor.text = ", ".join(sorted(chosen, key=lambda t: (len(t), t)))
    if choices is not None:
        editor.choices = [Choice(value, label, value in chosen) for value, label in choices]


def load_live(session: Session, target: type, texts: list[str]
              ) -> tuple[list[Any], dict[Any, Any], list[str]]:
    """Parse ids of ``target`` and load its live records: (ids in order, found by id, errors).

    Too many ids or unparsable ones are errors; ids with no live record are for the caller to
    report (they are the ids not in ``found``).
    """
    if len(texts) > MAX_IDS:
        return [], {}, [f"At most {MAX_IDS} records can be linked here."]
    (pk_col,) = pk_columns(target)
    ids: list[Any] = []
    errors: list[str] = []
    for text in dict.fromkeys(texts):
        try:
            ids.append(parse_value(pk_col, text))
        except (ValueError, TypeError, OverflowError):
            errors.append(f"{text[:40]!r} is not a valid id.")
    if errors or not ids:
        return ids, {}, errors
    stmt: sa.Select[Any] = sa.select(target).where(pk_col.in_(ids), *live_where(target))
    found = {getattr(r, pk_col.key): r for r in session.execute(stmt).scalars()}
    return ids, found, []


def _load_ids(session: Session, target: type, texts: list[str], editor: Editor
              ) -> list[Any] | None:
    """The live records with these ids (in the order given); None and an error if any is bad."""
    ids, found, errors = load_live(session, target, texts)
    editor.errors += errors
    missing = [str(i) for i in ids if i not in found]
    if missing and not errors:
        editor.errors.append(f"There is no record with id {', '.join(missing[:10])}.")
    if editor.errors:
        return None
    return [found[i] for i in ids]


# -- one-to-many (read-only) ---------------------------------------------------------------


def _list_editor(view: ModelView, editor: Editor, obj: Any) -> None:
    from .context import admin_url, can

    items = list(getattr(obj, editor.key))
    editor.more = len(items) > LIST_LIMIT
    target = _relation(view, editor.key).mapper.class_
    peer = view.peers.get(target)
    for item in items[:LIST_LIMIT]:
        url = ""
        if peer is not None and can("edit", peer):
            url = admin_url("edit_view", model=peer.slug, pk=format_pk(model_pk(item)))
        editor.linked.append((view.label_of(item), url))


# -- maps ------------------------------------------------------------------------------------


def parse_typed(text: str) -> Any:
    """A typed map value from text: JSON numbers, booleans, objects, lists and null, else text."""
    def no_constants(name: str) -> Any:
        raise ValueError(name)

    try:
        value = json.loads(text, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return text
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_LIMIT:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value


def show_typed(value: Any) -> str:
    """The text a map value is edited as (a string that would parse as another type is quoted)."""
    if isinstance(value, str) and value == printable(value):
        parsed = parse_typed(value)
        if isinstance(parsed, str) and parsed == value:
            return value
    # JSON, with a stored lone surrogate (from before they were refused) as its \u escape
    return json_text(value)


def _map_editor(editor: Editor, obj: Any | None, formdata: Any | None) -> None:
    current: dict[str, Any] = {} if obj is None else dict(getattr(obj, editor.key))
    p = editor.name
    if formdata is None:
        items = sorted(current.items())
        editor.rows = [MapRow(i, k, show_typed(v)) for i, (k, v) in enumerate(items)]
        editor.rows += [MapRow(j, "", "", new=True) for j in range(NEW_ROWS)]
        return
    wanted = dict(current)
    for i in range(MAX_ROWS):
        key = formdata.get(f"{p}-key-{i}")
        if key is None:
            break
        row = MapRow(i, key, str(formdata.get(f"{p}-val-{i}", "")),
                     remove=bool(formdata.get(f"{p}-del-{i}")))
        editor.rows.append(row)
        if key not in current:
            continue  # removed meanwhile; the version check reports the conflict
        if row.remove:
            wanted.pop(key, None)
        else:
            row.error = _value_error(row.value)
            wanted[key] = parse_typed(row.value.replace("\r\n", "\n"))
    for j in range(MAX_ROWS):
        key = formdata.get(f"{p}-newkey-{j}")
        if key is None:
            break
        row = MapRow(j, key.strip(), str(formdata.get(f"{p}-newval-{j}", "")), new=True)
        editor.rows.append(row)
        if not row.key and not row.value:
            continue
        # a key set meanwhile by someone else is not on this form: the version check turns it
        # into a conflict with a choice, so only keys the user can see count as taken
        shown = {r.key for r in editor.rows if not r.new} | {
            r.key for r in editor.rows[:-1] if r.new and r.error is None}
        row.error = _key_error(row.key, {k: v for k, v in wanted.items() if k in shown}) or (
            _value_error(row.value))
        if row.error is None:
            wanted[row.key] = parse_typed(row.value.replace("\r\n", "\n"))
    editor.wanted = wanted


def _key_error(key: str, wanted: dict[str, Any]) -> str | None:
    if not key:
        return "Give the new value a key."
    if len(key) > KEY_LENGTH or "\x00" in key:
        return f"Keys are at most {KEY_LENGTH} characters, without NUL."
    if key in wanted:
        return f"The key {key!r} is already set; change its row above instead."
    return None


def _value_error(text: str) -> str | None:
    if "\x00" in text:
        return "Values cannot contain NUL characters."
    return map_value_error(text, parse_typed(text.replace("\r\n", "\n")))


# -- saving ----------------------------------------------------------------------------------


def same_map(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two maps hold the same keys with the same typed values (1 is not true)."""
    return {k: typed(v) for k, v in a.items()} == {k: typed(v) for k, v in b.items()}


def apply_editors(obj: Any, editors: list[Editor], session: Session) -> bool:
    """Put validated editor values on the record (only what changed); whether anything did."""
    changed = False
    for editor in editors:
        if editor.wanted is None or editor.invalid:
            continue
        if editor.inline is not None:
            if apply_inline(session, obj, editor.key, editor.inline):
                changed = True
        elif editor.kind == "many":
            collection = getattr(obj, editor.key)
            if {id(x) for x in collection} != {id(x) for x in editor.wanted}:
                keep = [x for x in collection if any(x is w for w in editor.wanted)]
                added = [w for w in editor.wanted if not any(w is x for x in collection)]
                setattr(obj, editor.key, keep + added)
                changed = True
        elif editor.kind == "map" and not same_map(dict(getattr(obj, editor.key)), editor.wanted):
            setattr(obj, editor.key, editor.wanted)
            changed = True
    return changed
