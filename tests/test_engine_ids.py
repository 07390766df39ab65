"""A deleted record's id is never handed to a new record, so histories never merge."""

from __future__ import annotations

from engine_models import versioned_sessions
from sqlalchemy import Engine, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from versioned_admin.versioning import Versioned, deleted_records, versions


class Base(DeclarativeBase):
    pass


class Note(Versioned, Base):
    __tablename__ = "ids_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(20))


def test_new_record_after_delete_starts_its_own_history(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with versioned_sessions(engine) as mk, mk() as s:
        first = Note(text="a")
        s.add(first)
        s.commit()
        old_id = first.id
        s.delete(first)
        s.commit()
        second = Note(text="b")
        s.add(second)
        s.commit()
        assert second.id != old_id  # SQLite: AUTOINCREMENT is switched on for versioned tables
        assert [(v.number, v.operation.value) for v in versions(s, Note, second.id)] == [
            (1, "insert")
        ]
        assert [v.pk for v in deleted_records(s, Note)] == [(old_id,)]
