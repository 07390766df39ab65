"""Inheritance with the rest of the engine: versioned maps, collections declared on a
subclass, a base's collection of subclass records, and the shapes refused at mapping time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from engine_models import versioned_sessions
from sqlalchemy import Column, Engine, ForeignKey, Integer, String, Table
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from versioned_admin.versioning import (
    Versioned,
    VersionedMap,
    get_version,
    map_at,
    related_as_of,
    restore,
    revert,
    versions,
)


class Base(DeclarativeBase):
    pass


class Team(Versioned, Base):
    __tablename__ = "ih_team"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    members: Mapped[list[Member]] = relationship(back_populates="team")


class Member(Versioned, Base):
    __tablename__ = "ih_member"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(20))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("ih_team.id"))
    team: Mapped[Team | None] = relationship(back_populates="members")
    notes = VersionedMap()
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "member"}


coder_skill = Table(
    "ih_coder_skill", Base.metadata,
    Column("coder_id", ForeignKey("ih_coder.id"), primary_key=True),
    Column("skill_id", ForeignKey("ih_skill.id"), primary_key=True),
)


class Skill(Versioned, Base):
    __tablename__ = "ih_skill"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Coder(Member):
    __tablename__ = "ih_coder"
    id: Mapped[int] = mapped_column(ForeignKey("ih_member.id"), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(20))
    patches: Mapped[list[Patch]] = relationship()
    skills: Mapped[list[Skill]] = relationship(secondary=coder_skill)
    settings = VersionedMap()
    __mapper_args__ = {"polymorphic_identity": "coder"}


class Patch(Versioned, Base):
    __tablename__ = "ih_patch"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    coder_id: Mapped[int | None] = mapped_column(ForeignKey("ih_coder.id"))


@pytest.fixture
def maker(engine: Engine) -> Iterator[sessionmaker[Session]]:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk:
        yield mk


def test_maps_of_base_and_subclass(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        c = Coder(id=1, name="a", language="C")
        c.notes, c.settings = {"k": 1}, {"dark": True}
        s.add(c)
        s.commit()
        c.notes["k"] = 2
        s.commit()
        c.language, c.settings["font"] = "Go", 12
        s.commit()
        assert [v.changed for v in versions(s, Member, 1)[:2]] == [
            ("language", "settings"), ("notes",)]
        assert map_at(s, Member, 1, 1, name="notes") == {"k": 1}
        assert map_at(s, Coder, 1, 3, name="settings") == {"dark": True, "font": 12}
        revert(s, c, 1)
        s.commit()
        assert (dict(c.notes), dict(c.settings), c.language) == ({"k": 1}, {"dark": True}, "C")
        s.delete(c)
        s.commit()
        back = restore(s, Member, 1)
        s.commit()
        assert type(back) is Coder
        assert (dict(back.notes), dict(back.settings)) == ({"k": 1}, {"dark": True})


def test_collections_declared_on_a_subclass(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        skill = Skill(id=1)
        c = Coder(id=1, name="a", language="C")
        s.add_all([c, skill])
        s.commit()
        c.patches.append(Patch(id=1))
        c.language = "Go"
        s.commit()  # a column and a collection: one version
        c.skills.append(skill)
        s.commit()
        s.add(Patch(id=2, coder_id=1))  # from the child's side
        s.commit()
        got = [(v.number, v.changed, v.state["patches"], v.state["skills"])
               for v in versions(s, Member, 1)]
        assert got[:3] == [
            (4, ("patches",), [1, 2], [1]),
            (3, ("skills",), [1], [1]),
            (2, ("language", "patches"), [1], []),
        ]
        # An insert lists its state's keys (in jsonb's order on PostgreSQL).
        assert sorted(got[3][1]) == sorted(
            ["id", "name", "type", "team_id", "language", "patches", "skills"])
        revert(s, c, 1, relations=("patches", "skills"))
        s.commit()
        v = versions(s, Coder, 1)[0]
        assert (v.number, v.reverted_from, v.state["patches"], v.state["skills"]) == (
            5, 1, [], [])
        assert v.state["language"] == "C"


def test_a_collection_of_subclass_records(maker: sessionmaker[Session]) -> None:
    with maker() as s:
        team = Team(id=1)
        s.add_all([team, Coder(id=1, name="a", team=team), Member(id=2, name="b", team=team)])
        s.commit()
        s.get(Coder, 1).language = "Rust"
        s.commit()
        (v,) = versions(s, Team, 1)
        assert v.state["members"] == [1, 2]
        then = related_as_of(s, get_version(s, Team, 1, 1), "members")
        assert [(r.pk, r.version.model if r.version else None) for r in then] == [
            ((1,), Coder), ((2,), Member)]
        assert then[0].state is not None and then[0].state["language"] is None


def test_refused_at_mapping_time() -> None:
    """Shapes whose history could not be kept are refused when the class is mapped."""
    code = textwrap.dedent(
        """
        from sqlalchemy import Column, ForeignKey, Integer, String
        from sqlalchemy.orm import DeclarativeBase, configure_mappers, relationship
        from versioned_admin.versioning import Versioned, VersionedRows, VersioningError

        class Base(DeclarativeBase):
            pass

        class Row(VersionedRows, Base):
            __tablename__ = "row"
            id = Column(Integer, primary_key=True, autoincrement=False)
            type = Column(String(10))
            __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "row"}

        try:
            class SubRow(Row):
                __mapper_args__ = {"polymorphic_identity": "sub"}
        except TypeError as exc:
            print("rows:", exc)

        class Plain(Versioned, Base):
            __tablename__ = "plain"
            id = Column(Integer, primary_key=True)

        try:
            class SubPlain(Plain):
                __tablename__ = "sub_plain"
                id = Column(ForeignKey("plain.id"), primary_key=True)
        except TypeError as exc:
            print("no discriminator:", exc)

        class Kind(Versioned, Base):
            __tablename__ = "kind"
            id = Column(Integer, primary_key=True)
            type = Column(String(10))
            __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "kind"}

        try:
            class Concrete(Kind):
                __tablename__ = "concrete"
                id = Column(Integer, primary_key=True)
                type = Column(String(10))
                __mapper_args__ = {"concrete": True, "polymorphic_identity": "concrete"}
        except TypeError as exc:
            print("concrete:", exc)

        class Owner(Versioned, Base):
            __tablename__ = "owner"
            id = Column(Integer, primary_key=True)
            type = Column(String(10))
            items = relationship("Item")
            __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "owner"}

        class SubOwner(Owner):
            __mapper_args__ = {"polymorphic_identity": "sub"}

        class Item(Base):
            __tablename__ = "item"
            id = Column(Integer, primary_key=True)
            owner_id = Column(ForeignKey("owner.id"))

        try:
            configure_mappers()
        except VersioningError as exc:
            print("collection:", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "rows: SubRow: the rows strategy does not version subclasses" in out, out
    assert "no discriminator: SubPlain: a versioned subclass needs a discriminator" in out, out
    assert "concrete: Concrete: concrete-table inheritance from Kind is not versioned" in out, out
    assert "collection: Owner.items: a collection on a versioned model that versioned " \
           "subclasses (SubOwner) inherit" in out, out
