"""Versioned inheritance hierarchies shared by the engine and admin tests.

Both hierarchies have the same shape, so the tests run once per kind: ``Employee`` (base, ``type``
discriminator), ``Engineer`` adding ``primary_language`` and ``Manager`` adding ``level``.
Single-table: every column lives in ``st_employee``. Joined-table: ``jt_engineer`` and
``jt_manager`` hold the subclass columns, keyed by ``jt_employee.id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, Integer, MetaData, String, Table, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from versioned_admin.versioning import Versioned


class SingleBase(DeclarativeBase):
    pass


class StEmployee(Versioned, SingleBase):
    __tablename__ = "st_employee"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(20))
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}


class StEngineer(StEmployee):
    primary_language: Mapped[str | None] = mapped_column(String(30), nullable=True)
    __mapper_args__ = {"polymorphic_identity": "engineer"}


class StManager(StEmployee):
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __mapper_args__ = {"polymorphic_identity": "manager"}


class JoinedBase(DeclarativeBase):
    pass


class Employee(Versioned, JoinedBase):
    __tablename__ = "jt_employee"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    type: Mapped[str] = mapped_column(String(20))
    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "employee"}


class Engineer(Employee):
    __tablename__ = "jt_engineer"
    id: Mapped[int] = mapped_column(ForeignKey("jt_employee.id"), primary_key=True)
    primary_language: Mapped[str | None] = mapped_column(String(30), nullable=True)
    __mapper_args__ = {"polymorphic_identity": "engineer"}


class Manager(Employee):
    __tablename__ = "jt_manager"
    id: Mapped[int] = mapped_column(ForeignKey("jt_employee.id"), primary_key=True)
    level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __mapper_args__ = {"polymorphic_identity": "manager"}


@dataclass(frozen=True)
class Hierarchy:
    """One kind of inheritance: its models and the tables a record's columns live in."""

    kind: str
    metadata: MetaData
    Employee: Any
    Engineer: Any
    Manager: Any

    @property
    def base_table(self) -> Table:
        """The base's table (holds every column in single-table inheritance)."""
        table: Table = self.Employee.__table__
        return table

    @property
    def engineer_table(self) -> Table:
        """The table holding ``primary_language``."""
        table: Table = self.Engineer.__table__
        return table


SINGLE = Hierarchy("single", SingleBase.metadata, StEmployee, StEngineer, StManager)
JOINED = Hierarchy("joined", JoinedBase.metadata, Employee, Engineer, Manager)
HIERARCHIES = {"single": SINGLE, "joined": JOINED}


def add_ada(s: Session, h: Hierarchy) -> int:
    """Insert and commit an engineer; return its key."""
    e = h.Engineer(name="Ada", primary_language="Python")
    s.add(e)
    s.commit()
    return int(e.id)


def engineer_state(pk: int, name: str, language: str | None) -> dict[str, object]:
    """The state an engineer's version holds."""
    return {"id": pk, "name": name, "type": "engineer", "primary_language": language}


def live_row(s: Session, h: Hierarchy, pk: int) -> tuple[object, ...] | None:
    """(name, primary_language) as the tables hold them, bypassing the identity map."""
    base, sub = h.base_table, h.engineer_table
    stmt = select(base.c.name, sub.c.primary_language).where(base.c.id == pk)
    if sub is not base:
        stmt = stmt.join_from(base, sub, base.c.id == sub.c.id)
    row = s.connection().execute(stmt).first()
    return None if row is None else tuple(row)
