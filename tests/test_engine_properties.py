"""Hypothesis: any sequence of edits leaves a history that replays to the live row and reverts
exactly to any version."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from engine_models import versioned_sessions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Engine, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from versioned_admin.versioning import (
    Operation,
    Versioned,
    VersionedRows,
    get_live,
    restore,
    revert,
    versions,
)


class Base(DeclarativeBase):
    pass


class _Columns:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(40))
    n: Mapped[int | None] = mapped_column(Integer)
    f: Mapped[float | None] = mapped_column(Float)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)


class ShadowDoc(_Columns, Versioned, Base):
    __tablename__ = "pr_shadow"


class RowsDoc(_Columns, VersionedRows, Base):
    __tablename__ = "pr_rows"


MODELS = {"shadow": ShadowDoc, "rows": RowsDoc}
FIELDS = ("title", "n", "f", "data")

texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
values = {
    "title": texts,
    "n": st.none() | st.integers(-(2**31), 2**31 - 1),
    "f": st.none() | st.floats(allow_nan=False, width=64),
    "data": st.none()
    | st.dictionaries(
        st.text("abc", max_size=2),
        st.none() | st.booleans() | st.integers(-1000, 1000) | st.text("xyz", max_size=3),
        max_size=3,
    ),
}
changes = st.fixed_dictionaries({}, optional=values).filter(bool)
edits = st.lists(
    st.one_of(
        st.tuples(st.just("set"), changes),
        st.tuples(st.just("revert"), st.integers(0, 1000)),
        st.tuples(st.just("delete_restore"), st.none()),
        st.tuples(st.just("noop"), st.none()),
    ),
    max_size=8,
)
first_values = st.fixed_dictionaries(values)

DELETED = None
_ids = itertools.count(1)


def _live_state(s: Session, model: type, pk: int) -> dict[str, Any] | None:
    s.expire_all()
    obj = get_live(s, model, pk)
    return None if obj is None else {"id": obj.id, **{k: getattr(obj, k) for k in FIELDS}}


def _apply(
    s: Session, model: type, pk: int, edit: tuple[str, Any], expected: list[Any]
) -> None:
    """Do one edit in its own transaction and extend the model of the history."""
    kind, arg = edit
    current = expected[-1]
    if kind == "set":
        obj = get_live(s, model, pk)
        for key, value in arg.items():
            setattr(obj, key, value)
        new = {**current, **arg}
        if new != current:
            expected.append(new)
    elif kind == "revert":
        live_versions = [i for i, st_ in enumerate(expected) if st_ is not DELETED]
        k = live_versions[arg % len(live_versions)]
        revert(s, get_live(s, model, pk), k + 1)
        if expected[k] != current:
            expected.append(expected[k])
    elif kind == "delete_restore":
        s.delete(get_live(s, model, pk))
        s.commit()
        restore(s, model, pk)
        expected.extend([DELETED, current])
    else:
        obj = get_live(s, model, pk)
        for key in FIELDS:
            setattr(obj, key, current[key])
    s.commit()


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
def test_history_replays_and_reverts_exactly(engine: Engine, strategy: str) -> None:
    model = MODELS[strategy]
    Base.metadata.create_all(engine)

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(first=first_values, steps=edits)
    def check(first: dict[str, Any], steps: list[tuple[str, Any]]) -> None:
        pk = next(_ids)  # a fresh record per example: no cleanup between examples
        with versioned_sessions(engine) as mk, mk() as s:
            s.add(model(id=pk, **first))
            s.commit()
            expected: list[Any] = [{"id": pk, **first}]
            for step in steps:
                _apply(s, model, pk, step, expected)

            history = list(reversed(versions(s, model, pk, limit=1000)))
            assert [v.number for v in history] == list(range(1, len(expected) + 1))
            got = [DELETED if v.operation is Operation.DELETE else v.state for v in history]
            assert got == expected
            # replaying the history reproduces the live row
            replayed: dict[str, Any] | None = None
            for v in history:
                replayed = None if v.operation is Operation.DELETE else v.state
            assert replayed == _live_state(s, model, pk)
            # reverting to version k gives exactly version k's state, as a new version
            for v in history:
                if v.operation is Operation.DELETE:
                    continue
                before = versions(s, model, pk, limit=1)[0].number
                revert(s, get_live(s, model, pk), v.number)
                s.commit()
                assert _live_state(s, model, pk) == v.state
                latest = versions(s, model, pk, limit=1)[0]
                assert latest.state == v.state
                if latest.number != before:
                    assert (latest.number, latest.reverted_from) == (before + 1, v.number)

    check()
