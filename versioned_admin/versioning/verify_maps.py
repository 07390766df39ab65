"""verify for versioned maps: each version's entries follow from the version before it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .map_schema import DELETED, MapSpec
from .verify_scan import Invariant, Pk, Problem, chunks, keys_in, show

Listed = dict[tuple[Any, ...], list[tuple[str, int]]]  # (pk…, version) -> (key, value_id)


def map_problems(
    session: Session, name: str, specs: Iterable[MapSpec], versions: Sequence[tuple[Pk, int]]
) -> Iterator[Problem]:
    """Map versions (whose previous version is stored) whose entries are not what it implies.

    Version n lists the entries of version n - 1, minus keys removed in n (tombstones), with
    the values written in n for keys set in n: the writer copies or shares every other entry.
    """
    for spec in specs:
        for part in chunks(versions):
            yield from _check(session, name, spec, part)


def _entries(session: Session, spec: MapSpec, wanted: list[tuple[Any, ...]]
             ) -> tuple[Listed, list[tuple[tuple[Any, ...], str]]]:
    """Entries of these (pk…, version) keys, and entries whose value is not theirs to list."""
    e, v = spec.entries, spec.values
    n = len(spec.parent_cols)
    ecols = [e.c[c] for c in spec.parent_cols]
    owners = [v.c[c].label(f"owner_{i}") for i, c in enumerate(spec.parent_cols)]
    stmt = (
        select(*ecols, e.c.version, e.c.value_id, v.c.key, v.c.version.label("born"), *owners)
        .join(v, v.c.value_id == e.c.value_id)
        .where(keys_in([*ecols, e.c.version], wanted))
    )
    listed: Listed = {}
    foreign: list[tuple[tuple[Any, ...], str]] = []
    for row in session.connection().execute(stmt):
        where = tuple(row[: n + 1])
        listed.setdefault(where, []).append((row.key, int(row.value_id)))
        owner = tuple(row[-n:])
        if owner != where[:n]:
            foreign.append((where, f"key {show(row.key)} lists a value of record {show(owner)}"))
        elif row.born > where[n]:
            foreign.append((where, f"key {show(row.key)} lists a value of version {row.born}"))
    return listed, foreign


def _written(session: Session, spec: MapSpec, wanted: list[tuple[Any, ...]]
             ) -> dict[tuple[Any, ...], dict[str, tuple[str, int]]]:
    """(pk…, version) -> key -> (kind, value_id) of the value rows each version wrote."""
    v = spec.values
    vcols = [v.c[c] for c in spec.parent_cols]
    stmt = select(*vcols, v.c.version, v.c.key, v.c.kind, v.c.value_id).where(
        keys_in([*vcols, v.c.version], wanted))
    found: dict[tuple[Any, ...], dict[str, tuple[str, int]]] = {}
    n = len(vcols)
    for row in session.connection().execute(stmt):
        found.setdefault(tuple(row[: n + 1]), {})[row.key] = (row.kind, int(row.value_id))
    return found


def _check(session: Session, name: str, spec: MapSpec, part: Sequence[tuple[Pk, int]]
           ) -> Iterator[Problem]:
    here = [(*pk, number) for pk, number in part]
    before = [(*pk, number - 1) for pk, number in part if number > 1]
    listed, foreign = _entries(session, spec, list(dict.fromkeys(here + before)))
    written = _written(session, spec, here)
    bad: dict[tuple[Any, ...], list[str]] = {}
    for where, text in foreign:
        bad.setdefault(where, []).append(text)
    for pk, number in part:
        where = (*pk, number)
        entries = listed.get(where, [])
        issues = list(bad.get(where, []))
        twice = sorted(k for k, count in Counter(k for k, _v in entries).items() if count > 1)
        if twice:
            issues.append(f"keys listed twice: {', '.join(map(show, twice))}")
        actual = dict(entries)
        previous = dict(listed.get((*pk, number - 1), [])) if number > 1 else {}
        made = written.get(where, {})
        expected = {k: value_id for k, value_id in previous.items() if k not in made}
        expected.update({k: value_id for k, (kind, value_id) in made.items() if kind != DELETED})
        missing = sorted(expected.keys() - actual.keys())
        extra = sorted(actual.keys() - expected.keys())
        other = sorted(k for k in actual.keys() & expected.keys() if actual[k] != expected[k])
        for label, keys in (("missing keys", missing), ("keys it never set", extra),
                            ("keys listing another value than written", other)):
            if keys:
                issues.append(f"{label}: {', '.join(map(show, keys))}")
        if issues:
            yield Problem(name, pk, Invariant.MAP_ENTRIES,
                          f"map {spec.name!r}, version {number}: {'; '.join(issues)}")
