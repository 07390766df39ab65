"""Values that cannot be stored and read back exactly are refused before anything is written;
every value that is accepted reads back exactly, from the live row and from its version
(SQLite + PostgreSQL). History holding such values from before still diffs and displays."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from engine_models import row_count, version_table, versioned_sessions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Engine, Integer, String, Text, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from versioned_admin.diff import diff_states, display_value, json_diff, preview, values_equal
from versioned_admin.versioning import (
    CHANGESET_TABLE,
    Versioned,
    VersionedMap,
    VersionedRows,
    VersioningError,
    get_live,
    latest_version,
    map_at,
    revert,
    versions,
)
from versioned_admin.versioning import maps as maps_module
from versioned_admin.versioning.codec import decode, encode
from versioned_admin.versioning.values_check import (
    MAX_JSON_DEPTH,
    UnstorableValue,
    check_map_value,
    json_problem,
)


class Base(DeclarativeBase):
    pass


class _Columns:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)


class Doc(_Columns, Versioned, Base):
    __tablename__ = "jr_doc"
    m = VersionedMap()


class RowDoc(_Columns, VersionedRows, Base):
    __tablename__ = "jr_rowdoc"


MODELS = {"shadow": Doc, "rows": RowDoc}
MAP_VALUES = Base.metadata.tables["jr_doc_m_value"]
_ids = itertools.count(1000)


def deep(n: int, leaf: Any = 1) -> Any:
    """``n`` lists nested in each other around ``leaf``."""
    for _ in range(n):
        leaf = [leaf]
    return leaf


def deep_dict(n: int, leaf: Any = 1) -> Any:
    """``n`` dicts nested in each other around ``leaf``."""
    for _ in range(n):
        leaf = {"k": leaf}
    return leaf


# -- the engine makes the checks itself ----------------------------------------------------


def test_the_engine_makes_the_checks_itself(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        s.add(Doc(id=0, title="\ud83d"))
        with pytest.raises(UnstorableValue):
            s.flush()
        s.rollback()
    with pytest.raises(UnstorableValue):
        maps_module.typed(float("nan"))


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine, user=lambda: "alice") as mk:
        yield mk


# -- exact comparison ---------------------------------------------------------------------


def exact(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 is not 1.0 nor True; -0.0 is not 0.0)."""
    pairs = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if x.keys() != y.keys():
                return False
            pairs.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            pairs.extend(zip(x, y, strict=True))
        elif isinstance(x, float):
            if repr(x) != repr(y):
                return False
        elif x != y:
            return False
    return True


def _counts(s: Session, model: type) -> tuple[int, ...]:
    tables = [model.__table__, Base.metadata.tables[CHANGESET_TABLE], MAP_VALUES]
    if model is Doc:
        tables.append(version_table(Doc))
    return tuple(row_count(s, t) for t in tables)


def _live(s: Session, model: type, pk: int, key: str) -> Any:
    s.expire_all()
    obj = get_live(s, model, pk)
    return getattr(obj, key)


# -- refused: nothing written ------------------------------------------------------------


BAD_COLUMN_VALUES: list[tuple[str, str, Any, str]] = [
    ("infinity", "data", {"x": float("inf")}, "inf is not a number JSON can hold"),
    ("1e999", "data", json.loads('{"x": 1e999}'), "inf is not a number JSON can hold"),
    ("-infinity", "data", [float("-inf")], "-inf is not a number"),
    ("nan", "data", {"a": [float("nan")]}, "nan is not a number"),
    ("23-digit int", "data", {"x": 12345678901234567890123}, "does not fit 64 bits"),
    ("bare 23-digit int", "data", 12345678901234567890123, "does not fit 64 bits"),
    ("2**63", "data", [2**63], "does not fit 64 bits"),
    ("-2**63-1", "data", [-(2**63) - 1], "does not fit 64 bits"),
    ("5000-digit int", "data", {"x": 10**5000}, "an integer of 16,610 bits does not fit"),
    ("lone surrogate", "data", {"a": {"b": "\ud83d"}}, "lone surrogate (U+D83D)"),
    ("lone surrogate key", "data", {"ok": 1, "\udc00": 1}, "key that contains a lone surrogate"),
    ("bare lone surrogate", "data", "x\ud83d", "lone surrogate"),
    ("65 lists", "data", deep(65), "nested deeper than 64 levels"),
    ("65 dicts", "data", deep_dict(65), "nested deeper than 64 levels"),
    ("5000 lists", "data", deep(5000), "nested deeper than 64 levels"),
    ("int key", "data", {1: "a"}, "not a string"),
    ("Decimal", "data", [Decimal("1.5")], "Decimal is not a JSON type"),
    ("1e16", "data", {"big": 1e16}, "would read back as an integer"),
    ("-0.0", "data", [-0.0], "-0.0 would read back as 0.0"),
    ("bare 1.0", "data", 1.0, "reads back as the integer 1"),
    ("NUL", "data", ["a\x00b"], "NUL"),
    ("text", "body", "tea \ud83d time", "lone surrogate"),
    ("string", "title", "\udfff", "lone surrogate"),
]


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
@pytest.mark.parametrize("case", BAD_COLUMN_VALUES, ids=[c[0] for c in BAD_COLUMN_VALUES])
def test_unstorable_column_values_are_refused_and_nothing_is_written(
    maker: sessionmaker[Session], strategy: str, case: tuple[str, str, Any, str]
) -> None:
    _name, key, value, message = case
    model = MODELS[strategy]
    with maker() as s:
        s.add(model(id=1, title="t", body="b", data={"a": 1}))
        s.commit()
        before = _counts(s, model)
        # a new record
        s.add(model(id=2, **{key: value}))
        with pytest.raises(VersioningError, match="cannot be stored exactly") as refused:
            s.commit()
        s.rollback()
        assert message in str(refused.value)
        assert f"{model.__name__}.{key}" in str(refused.value)  # names the model and column
        assert _counts(s, model) == before
        # a change to an existing one
        setattr(get_live(s, model, 1), key, value)
        with pytest.raises(UnstorableValue):
            s.commit()
        s.rollback()
        assert _counts(s, model) == before
        assert _live(s, model, 1, "data") == {"a": 1}
        assert _live(s, model, 1, "title") == "t" and _live(s, model, 1, "body") == "b"
        latest = latest_version(s, model, 1)
        assert latest is not None and latest.number == 1


BAD_MAP_VALUES: list[tuple[str, Any, str]] = [
    ("lone surrogate", "\ud83d", "lone surrogate"),
    ("lone surrogate in JSON", {"a": ["\ud83d"]}, "lone surrogate"),
    ("nan", float("nan"), "nan is not a finite number"),
    ("infinity", float("inf"), "inf is not a finite number"),
    ("-0.0", -0.0, "-0.0 would read back as 0.0"),
    ("2**63", 2**63, "does not fit 64 bits"),
    ("infinity in JSON", [1, float("inf")], "inf is not a number"),
    ("65 lists", deep(65), "nested deeper than 64 levels"),
    ("int key in JSON", {"a": {2: 3}}, "not a string"),
]


@pytest.mark.parametrize("case", BAD_MAP_VALUES, ids=[c[0] for c in BAD_MAP_VALUES])
def test_unstorable_map_values_are_refused_when_set(
    maker: sessionmaker[Session], case: tuple[str, Any, str]
) -> None:
    _name, value, message = case
    with maker() as s:
        s.add(Doc(id=1, m={"keep": "me"}))
        s.commit()
        before = _counts(s, Doc)
        with pytest.raises(UnstorableValue, match=message):
            Doc(id=2, m={"k": value})
        doc = get_live(s, Doc, 1)
        with pytest.raises(VersioningError, match=message):
            doc.m["k"] = value
        with pytest.raises(VersioningError, match=message):
            doc.m = {"other": 1, "k": value}  # checked before anything is replaced
        assert dict(doc.m) == {"keep": "me"}
        s.commit()  # nothing to write
        assert _counts(s, Doc) == before
        assert map_at(s, Doc, 1, 1) == {"keep": "me"}


def test_a_map_key_with_a_lone_surrogate_is_refused(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        s.add(Doc(id=1, m={"keep": "me"}))
        s.commit()
        doc = get_live(s, Doc, 1)
        with pytest.raises(UnstorableValue, match="map key"):
            doc.m["\ud83d"] = 1
        s.commit()
        assert len(versions(s, Doc, 1)) == 1


# -- accepted: read back exactly -------------------------------------------------------------


GOOD_JSON: list[tuple[str, Any]] = [
    ("2**53", {"n": 2**53, "m": 2**53 + 1, "neg": -(2**53)}),
    ("64-bit ends", [2**63 - 1, -(2**63), 0, -1]),
    ("bare ints", 2**63 - 1),
    ("floats", {"a": 0.1, "b": -2.5, "c": 5e-324, "d": 1e-300, "e": 0.0, "f": 123.0}),
    ("below 1e16", [9999999999999998.0, -1e15, 1e15 + 0.5]),
    ("bare float", 1.5),
    ("unicode", {"emoji": "😀👍🏽", "日本": "語", "combining": "e\u0301", "sep": "\u2028",
                 "top": "\U0010ffff", "": ""}),
    ("bare text", "just text ☃"),
    ("empty containers", {"a": [], "b": {}, "c": [[], {}]}),
    ("empty list", []),
    ("empty dict", {}),
    ("64 lists", deep(MAX_JSON_DEPTH)),
    ("64 dicts", deep_dict(MAX_JSON_DEPTH, "leaf")),
    ("scalars", [True, False, None, "null", "1"]),
    ("bare true", True),
]


@pytest.mark.parametrize("strategy", ["shadow", "rows"])
@pytest.mark.parametrize("case", GOOD_JSON, ids=[c[0] for c in GOOD_JSON])
def test_storable_json_reads_back_exactly_from_row_version_and_revert(
    maker: sessionmaker[Session], strategy: str, case: tuple[str, Any]
) -> None:
    _name, value = case
    model = MODELS[strategy]
    with maker() as s:
        s.add(model(id=1, title="☃ snow 😀", data=value))
        s.commit()
        assert exact(_live(s, model, 1, "data"), value)
        v1 = latest_version(s, model, 1)
        assert v1 is not None and exact(v1.state["data"], value)
        assert exact(v1.state["title"], "☃ snow 😀")
        get_live(s, model, 1).data = {"other": 1}
        s.commit()
        revert(s, get_live(s, model, 1), 1)
        s.commit()
        assert exact(_live(s, model, 1, "data"), value)
        v3 = latest_version(s, model, 1)
        assert v3 is not None and v3.number == 3 and exact(v3.state["data"], value)


def test_storable_map_values_read_back_exactly(maker: sessionmaker[Session]) -> None:
    values = {
        "big": 2**63 - 1, "small": -(2**63), "2**53": 2**53, "float": 1e20, "tiny": 5e-324,
        "zero": 0.0, "emoji": "😀", "empty": "", "list": [], "dict": {}, "deep": deep(64),
        "json floats": [1e20, -0.0, 0.5], "yes": True, "none": None, "日本": "語",
    }
    with maker() as s:
        s.add(Doc(id=1, m=values))
        s.commit()
    with maker() as s:
        doc = get_live(s, Doc, 1)
        assert exact(dict(doc.m), values)
        assert exact(map_at(s, Doc, 1, 1), values)


# -- Hypothesis: every JSON value is either refused or read back exactly ---------------------


texts = st.text(max_size=6) | st.sampled_from(
    ["\ud83d", "a\udc00", "\x00", "😀"])
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=16,
) | st.integers(1, 80).map(deep)


def _store(s: Session, model: type, pk: int, key: str, value: Any) -> bool:
    """Insert a record with ``value``; False if it was refused (and nothing was written)."""
    before = _counts(s, model)
    try:
        if key == "m":
            s.add(model(id=pk, m={"k": value}))
        else:
            s.add(model(id=pk, **{key: value}))
        s.commit()
    except UnstorableValue:
        s.rollback()
        assert _counts(s, model) == before
        return False
    return True


@pytest.mark.parametrize("target", ["shadow", "rows", "map"])
def test_any_json_value_is_refused_or_reads_back_exactly(engine: Engine, monkeypatch: Any,
                                                        target: str) -> None:
    model = RowDoc if target == "rows" else Doc
    key = "m" if target == "map" else "data"
    Base.metadata.create_all(engine)

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(value=json_values)
    def check(value: Any) -> None:
        pk = next(_ids)
        if key == "m" and isinstance(value, str):
            value = value.replace("\x00", "")  # a map's text column: PostgreSQL refuses NUL
        with versioned_sessions(engine) as mk, mk() as s:
            if key == "m":
                try:
                    check_map_value(value)
                    refused = False
                except UnstorableValue:
                    refused = True
            else:
                refused = json_problem(value) is not None
            assert _store(s, model, pk, key, value) is not refused
            if refused:
                return
            if key == "m":
                s.expire_all()
                assert exact(get_live(s, Doc, pk).m["k"], value)
                assert exact(map_at(s, Doc, pk, 1)["k"], value)
                return
            assert exact(_live(s, model, pk, key), value)
            v = latest_version(s, model, pk)
            assert v is not None and exact(v.state[key], value)

    with monkeypatch.context():
        check()


# -- values stored before the check: history still opens -------------------------------------


LEGACY = {"deep": deep(300, "bottom"), "surrogate": {"a": "\ud83d", "b\udc00": [1]}}


def test_legacy_live_values_can_still_be_diffed_changed_and_deleted(
    maker: sessionmaker[Session], backend: str
) -> None:
    with maker() as s:
        s.add(Doc(id=1, title="t", data={"fine": 1}))
        s.commit()
        # written past the ORM, as an older release (or another program) could have
        with s.get_bind().begin() as conn:
            conn.execute(update(Doc.__table__).where(Doc.__table__.c.id == 1).values(data=LEGACY))
        s.expire_all()
        doc = get_live(s, Doc, 1)
        assert doc.data["surrogate"]["a"] == "\ud83d"
        doc.title = "other title"  # data untouched: this change is not refused
        s.commit()
        latest = latest_version(s, Doc, 1)
        assert latest is not None and latest.state["title"] == "other title"
        s.delete(get_live(s, Doc, 1))  # the last state is written with U+FFFD for the surrogate
        s.commit()
        gone = latest_version(s, Doc, 1)
        assert gone is not None and gone.is_delete
        assert gone.state["data"]["surrogate"]["a"] == "\ufffd"
        assert gone.state["data"]["deep"] == LEGACY["deep"]
        for old, new in itertools.pairwise(reversed(versions(s, Doc, 1))):
            _shows(diff_states(old.state, new.state))


def test_legacy_version_states_diff_and_refuse_a_revert(
    maker: sessionmaker[Session], backend: str
) -> None:
    legacy = dict(LEGACY)
    if backend == "postgresql":
        legacy.pop("surrogate")  # jsonb never held one
    with maker() as s:
        s.add(Doc(id=1, title="t", data={"fine": 1}))
        s.commit()
        vt = version_table(Doc)
        state = dict(latest_version(s, Doc, 1).state)  # type: ignore[union-attr]
        state["data"] = legacy
        cs_id = s.scalar(select(vt.c.changeset_id).where(vt.c.id == 1))
        s.commit()
        with s.get_bind().begin() as conn:
            conn.execute(insert(vt).values(id=1, version=2, operation="update", state=state,
                                           changed=["data"], changeset_id=cs_id))
        old, new = reversed(versions(s, Doc, 1))
        _shows(diff_states(old.state, new.state))
        _shows(diff_states(new.state, old.state))
        with pytest.raises(UnstorableValue, match="nested deeper than 64"):
            revert(s, get_live(s, Doc, 1), 2)
            s.commit()
        s.rollback()
        assert _live(s, Doc, 1, "data") == {"fine": 1}


def _shows(diffs: list[Any]) -> None:
    """Everything a diff page shows of ``diffs`` is text a page can encode."""
    shown: list[str] = []
    for d in diffs:
        shown += [display_value(d.old, limit=5000), display_value(d.new, limit=5000)]
        for k in d.keys or ():
            shown += [k.path, display_value(k.old), display_value(k.new)]
        if d.text is not None:
            for line in d.text.lines:
                shown += [line.left_text, line.right_text]
                shown += [h.left_text + h.right_text for h in line.hidden]
        shown += preview(d.old, d.new)
    "".join(shown).encode("utf-8")


# -- the pure parts ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [deep, deep_dict], ids=["lists", "dicts"])
def test_diff_and_display_handle_any_depth(make: Callable[..., Any]) -> None:
    old, new = make(5000, "a"), make(5000, "b")
    assert values_equal(old, make(5000, "a")) and not values_equal(old, new)
    keys = json_diff(old, new)
    assert [k.kind for k in keys] == ["changed"]
    assert "…" in display_value(old)
    _shows(diff_states({"f": old}, {"f": new}))
    _shows(diff_states(None, {"f": new}))


def test_diff_and_display_show_lone_surrogates_as_replacement_characters() -> None:
    old = {"text": "tea \ud83d time\nline two", "json": {"a\udc00": "\ud83d", "b": 1}}
    new = {"text": "tea \udc00 time\nline 2", "json": {"a\udc00": "x", "b": 2}}
    diffs = diff_states(old, new)
    _shows(diffs)
    assert display_value("a\ud83db") == "a\ufffdb"
    assert display_value("\ud83d\ude00") == "😀"  # a pair split in two joins up


def test_codec_encodes_any_depth_and_decodes_bad_stored_values_as_stored() -> None:
    assert values_equal(encode(deep(5000)), deep(5000))
    assert encode({"a\udc00": ["x\ud83d"], 1: (2, 3)}) == {"a\ufffd": ["x\ufffd"], "1": [2, 3]}
    from sqlalchemy import Date, DateTime, Float, LargeBinary, Numeric, Uuid

    for raw, type_ in [("not a date", DateTime()), ("2024-13-45", Date()), ("abc", Float()),
                       ("abc", LargeBinary()), ("x", Numeric()), ("nope", Uuid())]:
        assert decode(raw, type_) == raw
