"""New versions for the parents whose collections a bulk statement changed.

``bulk_parents`` reads which records a statement may touch before it runs; once it has run,
each of them whose collections now differ from its latest version gets an update version in
the statement's changeset, listing its collections as they are, and association tables log
their links, as a flush does. A fixed number of statements per model, whatever the row count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from .bulk_parents import ParentChanges
from .maps import write_maps
from .relations import (
    CollectionSpec,
    Pk,
    association_rows,
    current,
    latest_states,
    write_links,
)
from .schema import ModelInfo
from .statements import pk_params
from .writer import NUMBER, read_states, version_row, write_shadow

ChangesetFor = Callable[[Session, ModelInfo], int]
Own = tuple[ModelInfo, list[dict[str, Any]]]


def version_parents(session: Session, changes: ParentChanges, changeset_for: ChangesetFor,
                    own: Own | None = None) -> None:
    """Write a version for each parent whose collections the statement changed.

    ``own``: the statement's own model and the version rows bulk.py made for it, not yet
    written. A parent among them (a self-referencing collection) gets its collection change
    in that row rather than a second version in the same changeset.
    """
    links: dict[Table, list[dict[str, Any]]] = {}
    owners: dict[Table, CollectionSpec] = {}
    for info, spec in changes.watched:
        # One spec logs each association table's links, as in a flush.
        if spec.secondary is not None and info.strategy == "shadow":
            owners.setdefault(spec.secondary, spec)
    for info, keys in changes.parents.values():
        mine = own[1] if own is not None and own[0] is info else None
        rows = _parent_rows(session, info, list(keys), changeset_for, owners, links, mine)
        if mine is None:
            write_versions(session, info, rows, changeset_for)
        else:
            mine.extend(rows)
    write_links(session, links, owners)


def _parent_rows(session: Session, info: ModelInfo, pks: list[Pk], changeset_for: ChangesetFor,
                 owners: dict[Table, CollectionSpec], links: dict[Table, list[dict[str, Any]]],
                 mine: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Version rows of the parents of one model whose collections changed."""
    names = pk_params(info)
    by_pk = {tuple(r[n] for n in names): r for r in mine or ()}
    # A parent with no version yet (it predates versioning) gets its first one here, as in a
    # flush; one whose latest version is a delete has no live row and is skipped below.
    prev = latest_states(session, info, pks)
    now = {s.key: current(session, s, pks) for s in info.collections}
    changed: dict[Pk, list[str]] = {}
    for pk in pks:
        before = prev.get(pk, {})
        keys = [s.key for s in info.collections if before.get(s.key) != now[s.key][pk]]
        if keys:
            changed[pk] = keys
    if not changed:
        return []
    cs_id = changeset_for(session, info)
    live = read_states(session, info, [pk for pk in changed if pk not in by_pk])
    rows: list[dict[str, Any]] = []
    versioned: list[Pk] = []  # parents whose new version lists the change
    for pk, keys in changed.items():
        row = by_pk.get(pk)
        if row is not None:
            if row["operation"] == "update":  # its collections were listed as they are now
                row["changed"].extend(k for k in keys if k not in row["changed"])
                versioned.append(pk)
            continue
        found = live.get(pk)
        if found is None:
            continue
        state, number = found
        state.update({s.key: now[s.key][pk] for s in info.collections})
        row = version_row(info, pk, "update", cs_id, state, keys)
        # Known already: a concurrent version of the same parent would collide on the
        # (key, version) primary key, an error rather than a gap or a silent overwrite.
        row[NUMBER] = number + 1
        rows.append(row)
        versioned.append(pk)
    for spec in info.collections:
        if spec.secondary is None or not _logs(spec, owners):
            continue
        for pk in versioned:
            links.setdefault(spec.secondary, []).extend(association_rows(
                spec, pk, prev.get(pk, {}).get(spec.key) or [], now[spec.key][pk], cs_id))
    return rows


def _logs(spec: CollectionSpec, owners: dict[Table, CollectionSpec]) -> bool:
    """True if ``spec`` is the collection that logs its association table's links."""
    return spec.secondary is not None and owners.get(spec.secondary) is spec


def write_versions(session: Session, info: ModelInfo, rows: list[dict[str, Any]],
                   changeset_for: ChangesetFor) -> None:
    """Write versions made outside a flush; they share the previous version's map entries."""
    names = pk_params(info)
    # Read before writing: the writer processes key values in place for the driver.
    keys: list[tuple[Pk, object | None]] = [(tuple(r[n] for n in names), None) for r in rows]
    write_shadow(session, info, rows)
    if info.maps and keys:
        write_maps(session, info, keys, changeset_for(session, info))
