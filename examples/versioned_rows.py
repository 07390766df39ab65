"""The seed ``versioned_rows`` on versioned_admin's rows strategy.

In the seed, an UPDATE becomes an INSERT and the new row gets a new primary key.
On the rows strategy a record keeps its identity (``record``) and every row gets the next
``version_id``; here ``id`` is a synonym of ``version_id`` so the seed's assertions read as
they do there: the rows ``(1, "e1"), (2, "e2")`` and a parent that follows its child to row 2.

Run: ``python examples/versioned_rows.py`` (exits 0 when every assertion holds).
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
    synonym,
)

from versioned_admin.versioning import VersionedRows, enable_versioning, versions


class Base(DeclarativeBase):
    pass


# example 1, simple versioning


class Example(VersionedRows, Base):
    __tablename__ = "example"
    record: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    data: Mapped[str | None] = mapped_column(String)
    id = synonym("version_id")


# example 2, versioning with a parent


class Parent(Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_record: Mapped[int | None] = mapped_column(Integer)
    child_version_id: Mapped[int | None] = mapped_column(Integer)
    child: Mapped[Child | None] = relationship(back_populates="parent")
    child_id = synonym("child_version_id")

    __table_args__ = (
        ForeignKeyConstraint(
            ["child_record", "child_version_id"], ["child.record", "child.version_id"]
        ),
    )


class Child(VersionedRows, Base):
    __tablename__ = "child"
    record: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    data: Mapped[str | None] = mapped_column(String)
    parent: Mapped[Parent | None] = relationship(back_populates="child", uselist=False)
    id = synonym("version_id")


def main() -> None:
    """Run both scenarios of the seed and check its assertions."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    enable_versioning(maker)
    session: Session = maker()

    e1 = Example(data="e1")
    session.add(e1)
    session.commit()

    e1.data = "e2"
    session.commit()

    assert session.query(Example.id, Example.data).order_by(Example.id).all() == [
        (1, "e1"),
        (2, "e2"),
    ]

    p1 = Parent(child=Child(data="c1"))
    session.add(p1)
    session.commit()

    assert p1.child is not None
    p1.child.data = "c2"
    session.commit()

    assert p1.child_id == 2
    assert session.query(Child.id, Child.data).order_by(Child.id).all() == [(1, "c1"), (2, "c2")]

    # The old row is still there, and the record's history lists both.
    assert [(v.number, v.state["data"]) for v in versions(session, Child, 1)] == [
        (2, "c2"),
        (1, "c1"),
    ]
    session.close()
    print("versioned_rows: all assertions hold")


if __name__ == "__main__":
    main()
