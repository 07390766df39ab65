"""Collections and versioned maps on the conflict page: base, theirs and yours, a choice each.

The edit form posts a many-to-many collection as ``rel-<key>`` (checkbox values, or one
comma-separated id list for large tables) and a map as ``rel-<key>-key-<i>``/``-val-<i>``/
``-del-<i>`` rows (the keys of the version the form was opened at) plus ``-newkey-<j>``/
``-newval-<j>`` rows. Read against that base version, they say what the user changed, which is
compared with what the other writer changed (base → latest version).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from versioned_admin.versioning import Version
from versioned_admin.versioning.maps import typed

from . import relations_form as rf
from .history_support import session
from .registry import ModelView, format_pk, model_pk
from .relations_history import collection_diff, collection_keys, map_state

#: Kinds of a conflict row (the same words as the column rows of conflicts.py).
YOURS, THEIRS, BOTH = "yours", "theirs", "both"
#: The values of a choice radio: keep mine, keep theirs, or (collections) apply both changes.
PICK_MINE, PICK_THEIRS, PICK_BOTH = "mine", "theirs", "both"


@dataclass
class Entry:
    """One related record on one side of a collection conflict (``change``: "+", "−" or "")."""

    pk: str
    label: str
    change: str = ""


@dataclass
class CollectionConflict:
    """A many-to-many collection that you or they changed since the base version."""

    key: str
    label: str
    kind: str
    base: list[Entry]
    theirs: list[Entry]
    mine: list[Entry]
    combined: list[Entry]
    choice: str | None
    error: str | None = None
    offer_both: bool = False
    mine_pks: list[str] = field(default_factory=list)
    combined_pks: list[str] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)  # your records, loaded before saving

    @property
    def choice_key(self) -> str:
        """The key of this row's choice (the radio is named ``choice-<choice_key>``)."""
        return f"rel-{self.key}"

    def wanted(self) -> list[str] | None:
        """The related pks to save, in order; None to keep theirs."""
        if self.kind == YOURS or (self.kind == BOTH and self.choice == PICK_MINE):
            return self.mine_pks
        if self.kind == BOTH and self.choice == PICK_BOTH:
            return self.combined_pks
        return None


@dataclass
class MapKeyConflict:
    """One map key that you or they changed (values as typed in the form; None: not set)."""

    key: str
    kind: str
    base: str | None
    theirs: str | None
    mine: str | None
    choice_key: str
    choice: str | None
    mine_set: bool = False
    mine_value: Any = None

    @property
    def takes_mine(self) -> bool:
        """Whether saving writes your value of this key."""
        return self.kind == YOURS or (self.kind == BOTH and self.choice == PICK_MINE)


@dataclass
class MapConflict:
    """A versioned map with the keys that you or they changed."""

    key: str
    label: str
    rows: list[MapKeyConflict]
    errors: list[str]


@dataclass
class RelationConflicts:
    """Every collection and map of the form that you or they changed since the base version."""

    collections: list[CollectionConflict]
    maps: list[MapConflict]

    def __bool__(self) -> bool:
        return bool(self.collections or self.maps)

    def missing(self) -> list[str]:
        """Labels of the rows both sides changed that still need a choice."""
        out = [c.label for c in self.collections if c.kind == BOTH and c.choice not in (
            PICK_MINE, PICK_THEIRS, PICK_BOTH)]
        out += [f"{m.label}: {r.key}" for m in self.maps for r in m.rows
                if r.kind == BOTH and r.choice not in (PICK_MINE, PICK_THEIRS)]
        return out

    def problems(self) -> list[str]:
        """What stops saving your side: ids that are not valid (any more), bad map rows."""
        out = [f"{c.label}: {c.error}" for c in self.collections
               if c.error and c.wanted() is not None]
        out += [f"{m.label}: {e}" for m in self.maps for e in m.errors]
        return out


def relation_conflicts(view: ModelView, formdata: Any, base: Version, theirs: Version,
                       choices: dict[str, str] | None = None) -> RelationConflicts:
    """The collections and map keys of the posted form that you or they changed since ``base``."""
    choices = choices or {}
    cols: list[CollectionConflict] = []
    maps: list[MapConflict] = []
    for key in view.form_columns(False):
        kind = rf.extra_kind(view, key)
        if kind == "many":
            col = _collection(view, key, formdata, base, theirs, choices)
            if col is not None:
                cols.append(col)
        elif kind == "map":
            found = _map(view, key, formdata, base, theirs, choices)
            if found.rows or found.errors:
                maps.append(found)
    return RelationConflicts(cols, maps)


def apply_relation_choices(obj: Any, conflicts: RelationConflicts) -> bool:
    """Put the chosen collections and map values on the record; whether anything changed."""
    # the caller runs this under no_autoflush with the column changes: one save, one version
    changed = False
    for col in conflicts.collections:
        wanted = col.wanted()
        if wanted is None:
            continue
        items = list(getattr(obj, col.key))
        current = {format_pk(model_pk(x)): x for x in items}
        if set(current) == set(wanted):
            continue
        records = {**col.records, **current}
        keep = [x for pk, x in current.items() if pk in wanted]
        # their unchanged links keep their order; yours are appended as the editor does
        added = [records[pk] for pk in wanted if pk not in current and pk in records]
        setattr(obj, col.key, keep + added)
        changed = True
    for m in conflicts.maps:
        live = dict(getattr(obj, m.key))
        result = dict(live)
        for row in m.rows:
            if not row.takes_mine:
                continue
            if row.mine_set:
                result[row.key] = row.mine_value
            else:
                result.pop(row.key, None)
        if not rf.same_map(live, result):
            setattr(obj, m.key, result)
            changed = True
    return changed


# -- collections -----------------------------------------------------------------------------


def _posted_ids(formdata: Any, name: str) -> list[str]:
    """The ids the form posted: checkboxes one value each, the large-table input "3, 7"."""
    texts = [t.strip() for raw in formdata.getlist(name) for t in str(raw).split(",")]
    return list(dict.fromkeys(t for t in texts if t))


def _load_mine(view: ModelView, key: str, texts: list[str]
               ) -> tuple[list[str], dict[str, Any], str | None]:
    """Your ids as pk strings, the live records they name, and what is wrong with them."""
    target = view.mapper.relationships[key].mapper.class_
    ids, found, errors = rf.load_live(session(), target, texts)
    if errors:
        return [], {}, errors[0]
    pks = list(dict.fromkeys(format_pk((v,)) for v in ids))
    records = {format_pk((i,)): r for i, r in found.items()}
    missing = [pk for pk in pks if pk not in records]
    if missing:
        return pks, records, f"There is no record with id {', '.join(missing[:10])} any more."
    return pks, records, None


def _side(pks: list[str], base: set[str], labels: dict[str, str]) -> list[Entry]:
    """One side against the base: kept and added records, then the base's records it dropped."""
    entries = [Entry(pk, labels.get(pk, f"#{pk}"), "" if pk in base else "+") for pk in pks]
    entries += [Entry(pk, labels.get(pk, f"#{pk}"), "−") for pk in base if pk not in pks]
    return sorted(entries, key=lambda e: (e.label.lower(), e.pk))


def _collection(view: ModelView, key: str, formdata: Any, base: Version, theirs: Version,
                choices: dict[str, str]) -> CollectionConflict | None:
    mine_pks, records, error = _load_mine(view, key, _posted_ids(formdata, f"rel-{key}"))
    diff = collection_diff(view, key, base, theirs)
    labels = {i.pk: i.label for i in [*diff.removed, *diff.unchanged, *diff.added]}
    labels.update({pk: view.label_of(r) for pk, r in records.items() if pk not in labels})
    theirs_pks = [i.pk for i in [*diff.unchanged, *diff.added]]
    if key in collection_keys(view):
        base_pks = [i.pk for i in [*diff.removed, *diff.unchanged]]
    else:
        # not recorded in versions: the base is unknown, so theirs stands in for it and
        # yours is shown as the change (what a save without a conflict would do)
        base_pks = theirs_pks
    b, t, m = set(base_pks), set(theirs_pks), set(mine_pks)
    if m == t and error is None:
        return None
    kind = YOURS if t == b else THEIRS if m == b else BOTH
    # both changes at once: their result without what you removed, plus what you added
    combined = [pk for pk in theirs_pks if pk in m or pk not in b]
    combined += [pk for pk in mine_pks if pk not in b and pk not in t]
    return CollectionConflict(
        key, view.label_for(key), kind,
        base=_side(base_pks, b, labels),
        theirs=_side(theirs_pks, b, labels),
        mine=_side(mine_pks, b, labels),
        combined=_side(combined, b, labels),
        choice=choices.get(f"rel-{key}"),
        error=error,
        offer_both=kind == BOTH and set(combined) not in (m, t),
        mine_pks=mine_pks,
        combined_pks=combined,
        records=records,
    )


# -- maps ------------------------------------------------------------------------------------


def _key_field(name: str, key: str) -> str:
    """A choice key for a map key: keys may hold any character, so a digest of it."""
    return f"map-{name}-{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def mine_map(formdata: Any, name: str, base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The map the user's rows ask for, read against the map they were shown; and row errors."""
    p = f"rel-{name}"
    wanted = dict(base)
    errors: list[str] = []
    for i in range(rf.MAX_ROWS):
        key = formdata.get(f"{p}-key-{i}")
        if key is None:
            break
        if key not in base:
            continue  # the form only lists the base's keys; anything else was not offered
        if formdata.get(f"{p}-del-{i}"):
            wanted.pop(key, None)
            continue
        value = str(formdata.get(f"{p}-val-{i}", ""))
        if "\x00" in value:
            errors.append(f"the value of {key!r} contains a NUL character.")
        else:
            wanted[key] = rf.parse_typed(value.replace("\r\n", "\n"))
    for j in range(rf.MAX_ROWS):
        raw = formdata.get(f"{p}-newkey-{j}")
        if raw is None:
            break
        key, value = str(raw).strip(), str(formdata.get(f"{p}-newval-{j}", ""))
        if not key and not value:
            continue
        if not key:
            errors.append("a new value has no key.")
        elif len(key) > rf.KEY_LENGTH or "\x00" in key or "\x00" in value:
            errors.append(f"the new key {key[:40]!r} is too long or contains a NUL character.")
        elif key in wanted:
            errors.append(f"the key {key[:40]!r} is set twice.")
        else:
            wanted[key] = rf.parse_typed(value.replace("\r\n", "\n"))
    return wanted, errors


def _same_key(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    """Whether two maps agree on ``key`` (both unset, or the same typed value: 1 is not true)."""
    if (key in a) != (key in b):
        return False
    if key not in a:
        return True
    try:
        return typed(a[key]) == typed(b[key])
    except TypeError:
        return bool(a[key] == b[key])


def _shown(data: dict[str, Any], key: str) -> str | None:
    return rf.show_typed(data[key]) if key in data else None


def _map(view: ModelView, name: str, formdata: Any, base: Version, theirs: Version,
         choices: dict[str, str]) -> MapConflict:
    b = map_state(view, base.pk, name, base)
    t = map_state(view, theirs.pk, name, theirs)
    m, errors = mine_map(formdata, name, b)
    rows = []
    for key in sorted(set(b) | set(t) | set(m)):
        if _same_key(m, t, key):
            continue
        kind = YOURS if _same_key(t, b, key) else THEIRS if _same_key(m, b, key) else BOTH
        fkey = _key_field(name, key)
        rows.append(MapKeyConflict(key, kind, _shown(b, key), _shown(t, key), _shown(m, key),
                                   fkey, choices.get(fkey), key in m, m.get(key)))
    rows.sort(key=lambda r: r.kind != BOTH)  # the keys that need a choice come first
    return MapConflict(name, view.label_for(name), rows, errors)
