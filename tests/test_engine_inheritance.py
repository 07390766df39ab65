"""Single- and joined-table inheritance (shadow strategy): one history per hierarchy.

A subclass record's versions hold every column its class maps (base and sub-table, and the
discriminator), one version per flush whichever tables changed, and are found through the
base or the subclass alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from engine_models import changeset_count, row_count, version_table, versioned_sessions
from inheritance_models import HIERARCHIES, Hierarchy, add_ada, engineer_state, live_row
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from versioned_admin.versioning import (
    Operation,
    VersionNotFound,
    as_of,
    changesets,
    deleted_records,
    get_version,
    latest_version,
    model_info,
    restore,
    revert,
    versions,
)


@pytest.fixture(params=["single", "joined"])
def h(request: pytest.FixtureRequest) -> Hierarchy:
    return HIERARCHIES[request.param]


@pytest.fixture
def maker(engine: Engine, h: Hierarchy) -> Iterator[sessionmaker[Session]]:
    h.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def test_subclasses_share_the_base_history(h: Hierarchy) -> None:
    info, base = model_info(h.Engineer), model_info(h.Employee)
    assert info is not None and base is not None
    assert info.parent is base and info.version_table is base.version_table
    assert info.model is h.Engineer
    assert [k for k, _c in info.fields] == ["id", "name", "type", "primary_language"]
    # The base's own state has none of the subclasses' columns (single-table included).
    assert [k for k, _c in base.fields] == ["id", "name", "type"]
    assert [c.name for c in info.pk_columns] == ["id"]
    assert info.pk_columns[0].table is h.base_table


def test_insert_records_every_column(maker: sessionmaker[Session], h: Hierarchy) -> None:
    with maker() as s:
        pk = add_ada(s, h)
        (v,) = versions(s, h.Engineer, pk)
        assert v.model is h.Engineer and v.operation is Operation.INSERT
        assert v.state == engineer_state(pk, "Ada", "Python")
        assert v.changed == ("id", "name", "type", "primary_language")
        m = h.Manager(name="Grace", level=3)
        s.add(m)
        s.commit()
        assert latest_version(s, h.Manager, m.id).state == {  # type: ignore[union-attr]
            "id": m.id, "name": "Grace", "type": "manager", "level": 3}


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        ({"primary_language": "Rust"}, ("primary_language",)),
        ({"name": "Ada L."}, ("name",)),
        ({"name": "Ada L.", "primary_language": "Rust"}, ("name", "primary_language")),
    ],
    ids=["subclass-column", "base-column", "both"],
)
def test_a_change_to_either_table_is_one_version(
    maker: sessionmaker[Session], h: Hierarchy, engine: Engine,
    change: dict[str, str], changed: tuple[str, ...],
) -> None:
    with maker() as s:
        pk = add_ada(s, h)
        before = changeset_count(s, h.Employee)
        e = s.get(h.Engineer, pk)
        for key, value in change.items():
            setattr(e, key, value)
        s.commit()
        assert row_count(s, version_table(h.Employee)) == 2
        assert changeset_count(s, h.Employee) == before + 1
        v = versions(s, h.Engineer, pk)[0]
        assert (v.number, v.operation, v.changed) == (2, Operation.UPDATE, changed)
        expected = engineer_state(pk, "Ada", "Python") | change
        assert v.state == expected
        assert live_row(s, h, pk) == (expected["name"], expected["primary_language"])
        e.name = str(expected["name"])  # a no-op save makes no version
        s.commit()
        assert row_count(s, version_table(h.Employee)) == 2


def test_change_through_a_polymorphic_load(maker: sessionmaker[Session], h: Hierarchy) -> None:
    """Loaded as an Employee, the subclass columns are not loaded yet: still all recorded."""
    with maker() as s:
        pk = add_ada(s, h)
    with maker() as s:
        (e,) = s.scalars(select(h.Employee)).all()
        assert type(e) is h.Engineer
        e.name = "Countess"
        s.commit()
        v = versions(s, h.Employee, pk)[0]
        assert v.state == engineer_state(pk, "Countess", "Python") and v.changed == ("name",)
    with maker() as s:
        (e,) = s.scalars(select(h.Employee)).all()
        s.delete(e)
        s.commit()
        v = versions(s, h.Employee, pk)[0]
        assert v.operation is Operation.DELETE
        assert v.state == engineer_state(pk, "Countess", "Python")


def test_polymorphic_history_queries(maker: sessionmaker[Session], h: Hierarchy) -> None:
    with maker() as s:
        pk = add_ada(s, h)
        plain = h.Employee(name="Bob")
        s.add(plain)
        s.commit()
        s.get(h.Engineer, pk).primary_language = "Rust"
        s.commit()
        through_base = versions(s, h.Employee, pk)
        assert [(v.model, v.number) for v in through_base] == [(h.Engineer, 2), (h.Engineer, 1)]
        assert through_base == versions(s, h.Engineer, pk)
        assert get_version(s, h.Employee, pk, 1).state["primary_language"] == "Python"
        # A record of another class is not a Manager (nor is a plain Employee an Engineer).
        assert versions(s, h.Manager, pk) == []
        assert versions(s, h.Engineer, plain.id) == []
        with pytest.raises(VersionNotFound):
            get_version(s, h.Manager, pk, 1)
        (v,) = versions(s, h.Employee, plain.id)
        assert v.model is h.Employee
        assert v.state == {"id": plain.id, "name": "Bob", "type": "employee"}
        assert v.removed_fields == ()


def test_one_flush_of_several_classes(maker: sessionmaker[Session], h: Hierarchy) -> None:
    with maker() as s:
        s.add_all([h.Employee(id=1, name="a"), h.Engineer(id=2, name="b", primary_language="C"),
                   h.Manager(id=3, name="c", level=1)])
        s.commit()
        assert changeset_count(s, h.Employee) == 1
        models = [latest_version(s, h.Employee, i).model for i in (1, 2, 3)]  # type: ignore[union-attr]
        assert models == [h.Employee, h.Engineer, h.Manager]
        for obj in s.scalars(select(h.Employee)):
            obj.name = obj.name.upper()
        s.commit()
        assert [v.number for i in (1, 2, 3) for v in versions(s, h.Employee, i)] == [2, 1] * 3
        (head, entries), _first = changesets(s, [h.Employee, h.Engineer, h.Manager], limit=2)
        # Asking for the base and its subclasses lists each version once.
        assert sorted((v.model.__name__, v.pk) for v in entries) == sorted(
            [(h.Employee.__name__, (1,)), (h.Engineer.__name__, (2,)), (h.Manager.__name__, (3,))])
        (_h, only), _ = changesets(s, [h.Manager], limit=2)
        assert [(v.model, v.pk, v.changed) for v in only] == [(h.Manager, (3,), ("name",))]


def test_revert_restores_both_tables(maker: sessionmaker[Session], h: Hierarchy) -> None:
    with maker() as s:
        pk = add_ada(s, h)
        e = s.get(h.Engineer, pk)
        e.name, e.primary_language = "Ada L.", "Rust"
        s.commit()
        revert(s, e, 1)
        s.commit()
        v = versions(s, h.Engineer, pk)[0]
        assert (v.number, v.reverted_from, v.changed) == (3, 1, ("name", "primary_language"))
        assert v.state == engineer_state(pk, "Ada", "Python")
        assert live_row(s, h, pk) == ("Ada", "Python")
        # Through the base class and a key, too.
        revert(s, h.Employee, 2, pk=pk)
        s.commit()
        assert live_row(s, h, pk) == ("Ada L.", "Rust")
        assert versions(s, h.Employee, pk)[0].reverted_from == 2


def test_delete_and_restore_bring_back_both_tables(
    maker: sessionmaker[Session], h: Hierarchy
) -> None:
    with maker() as s:
        pk = add_ada(s, h)
        s.delete(s.get(h.Engineer, pk))
        s.commit()
        assert live_row(s, h, pk) is None
        assert s.connection().execute(select(func.count()).select_from(h.engineer_table)
                                      .where(h.engineer_table.c.id == pk)).scalar() == 0
        (gone,) = deleted_records(s, h.Employee)
        assert gone.model is h.Engineer and gone.state == engineer_state(pk, "Ada", "Python")
        assert deleted_records(s, h.Engineer) == [gone]
        assert deleted_records(s, h.Manager) == []
        back = restore(s, h.Employee, pk)
        assert type(back) is h.Engineer
        s.commit()
    with maker() as s:
        again = s.get(h.Employee, pk)
        assert type(again) is h.Engineer and again.primary_language == "Python"
        assert live_row(s, h, pk) == ("Ada", "Python")
        v = versions(s, h.Engineer, pk)[0]
        assert (v.number, v.operation, v.reverted_from) == (3, Operation.INSERT, 1)
        assert v.state == engineer_state(pk, "Ada", "Python")
        assert deleted_records(s, h.Employee) == []
        # Revert a deleted record to an older version: restored as its own class.
        s.delete(again)
        s.commit()
        obj = revert(s, h.Employee, 1, pk=pk)
        assert type(obj) is h.Engineer
        s.commit()
        assert live_row(s, h, pk) == ("Ada", "Python")


def test_as_of(maker: sessionmaker[Session], h: Hierarchy) -> None:
    with maker() as s:
        pk = add_ada(s, h)
        first = get_version(s, h.Engineer, pk, 1).changeset.issued_at
        s.get(h.Engineer, pk).primary_language = "Rust"
        s.commit()
        second = get_version(s, h.Engineer, pk, 2).changeset.issued_at
        assert as_of(s, h.Employee, pk, first - dt.timedelta(seconds=1)) is None
        then = as_of(s, h.Employee, pk, first)
        assert then is not None and then.model is h.Engineer
        assert then.state["primary_language"] == "Python"
        now = as_of(s, h.Engineer, pk, second)
        assert now is not None and now.state["primary_language"] == "Rust"
        assert as_of(s, h.Manager, pk, second) is None
