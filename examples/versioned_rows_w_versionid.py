"""The seed ``versioned_rows_w_versionid`` on versioned_admin's rows strategy.

An UPDATE becomes an INSERT of the record's next row, keyed ``(id, version_id)``;
``is_current_version`` is kept true only on the newest row and ``calc_is_current_version``
computes the same thing in SQL. A parent whose composite foreign key points at the row
follows it to the new version.

Run: ``python examples/versioned_rows_w_versionid.py`` (exits 0 when every assertion holds).
"""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, Integer, String, create_engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from versioned_admin.versioning import VersionedRows, enable_versioning, versions


class Base(DeclarativeBase):
    pass


# example 1, simple versioning


class Example(VersionedRows, Base):
    __tablename__ = "example"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[str | None] = mapped_column(String)


# example 2, versioning with a parent


class Parent(Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int | None] = mapped_column(Integer)
    child_version_id: Mapped[int | None] = mapped_column(Integer)
    child: Mapped[Child | None] = relationship(back_populates="parent")

    __table_args__ = (
        ForeignKeyConstraint(["child_id", "child_version_id"], ["child.id", "child.version_id"]),
    )


class Child(VersionedRows, Base):
    __tablename__ = "child"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[str | None] = mapped_column(String)
    parent: Mapped[Parent | None] = relationship(back_populates="child", uselist=False)


def main() -> None:
    """Run both scenarios of the seed and check its assertions."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    enable_versioning(maker)
    session: Session = maker()

    e1 = Example(id=1, data="e1")
    session.add(e1)
    session.commit()

    e1.data = "e2"
    session.commit()

    assert session.query(
        Example.id,
        Example.version_id,
        Example.is_current_version,
        Example.calc_is_current_version,  # type: ignore[attr-defined]
        Example.data,
    ).order_by(Example.id, Example.version_id).all() == [
        (1, 1, False, False, "e1"),
        (1, 2, True, True, "e2"),
    ]

    p1 = Parent(child=Child(id=1, data="c1"))
    session.add(p1)
    session.commit()

    assert p1.child is not None
    p1.child.data = "c2"
    session.commit()

    assert p1.child_id == 1
    assert p1.child.version_id == 2

    assert session.query(
        Child.id,
        Child.version_id,
        Child.is_current_version,
        Child.calc_is_current_version,  # type: ignore[attr-defined]
        Child.data,
    ).order_by(Child.id, Child.version_id).all() == [
        (1, 1, False, False, "c1"),
        (1, 2, True, True, "c2"),
    ]

    # What versioned_admin adds: each row is a version with its changeset.
    history = versions(session, Child, 1)
    assert [(v.number, v.operation.value, v.state["data"]) for v in history] == [
        (2, "update", "c2"),
        (1, "insert", "c1"),
    ]
    session.close()
    print("versioned_rows_w_versionid: all assertions hold")


if __name__ == "__main__":
    main()
