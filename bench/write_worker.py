"""One timed write workload in a fresh process: plain SQLAlchemy, ours, or Continuum.

Each variant runs in its own process because Continuum patches SQLAlchemy globally.
Usage: python bench/write_worker.py VARIANT URL ROWS  -> prints one JSON object.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, configure_mappers, mapped_column, sessionmaker

BATCH = 100
BODY = ("lorem ipsum dolor sit amet " * 40)[:1024]


def build(variant: str) -> tuple[type, Any, Any]:
    """Define the 6-column model for a variant; return (model, Base, hook)."""
    hook: Any = None
    if variant == "continuum":
        from sqlalchemy_continuum import make_versioned

        make_versioned(user_cls=None)

    class Base(DeclarativeBase):
        pass

    mixins: tuple[type, ...] = ()
    if variant == "ours":
        from versioned_admin.versioning import Versioned, enable_versioning

        mixins = (Versioned,)
        hook = enable_versioning

    class Item(*mixins, Base):  # type: ignore[misc]
        __tablename__ = "item"
        if variant == "continuum":
            __versioned__: dict[str, Any] = {}
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(200))
        body: Mapped[str] = mapped_column(Text)
        score: Mapped[int] = mapped_column(Integer)
        active: Mapped[bool] = mapped_column(Boolean)
        created_at: Mapped[dt.datetime] = mapped_column(DateTime)

    configure_mappers()
    return Item, Base, hook


@contextmanager
def _counting_copy(count: Callable[..., None]) -> Iterator[None]:
    """Count COPY statements too: they run on the driver cursor, below SQLAlchemy's events."""
    try:
        from psycopg import Cursor
    except ImportError:
        yield
        return
    original = Cursor.copy

    def copy(self: Any, *args: Any, **kwargs: Any) -> Any:
        count()
        return original(self, *args, **kwargs)

    Cursor.copy = copy  # type: ignore[method-assign]
    try:
        yield
    finally:
        Cursor.copy = original  # type: ignore[method-assign]


def main() -> None:
    """Run insert, update and delete of ROWS rows, BATCH per commit; print timings."""
    variant, url, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model, base, hook = build(variant)
    engine = create_engine(url)
    base.metadata.drop_all(engine)
    base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    if hook is not None:
        hook(maker)
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    out: dict[str, Any] = {"variant": variant}

    session = maker()
    start = time.perf_counter()
    for b in range(0, rows, BATCH):
        session.add_all(
            model(title=f"title {i}", body=BODY, score=i, active=True, created_at=now)
            for i in range(b, b + BATCH)
        )
        session.commit()
    out["insert"] = time.perf_counter() - start
    session.close()

    session = maker()
    counted = {"n": 0}

    def count(*_args: Any) -> None:
        counted["n"] += 1

    start = time.perf_counter()
    for b in range(0, rows, BATCH):
        objs = session.scalars(
            select(model).where(model.id > b, model.id <= b + BATCH)
        ).all()
        for o in objs:
            o.score = o.score + 1
        if b == 0:
            event.listen(engine, "before_cursor_execute", count)
            with _counting_copy(count):
                session.flush()
            event.remove(engine, "before_cursor_execute", count)
        session.commit()
    out["update"] = time.perf_counter() - start
    out["statements_update_flush"] = counted["n"]
    session.close()

    session = maker()
    start = time.perf_counter()
    for b in range(0, rows, BATCH):
        objs = session.scalars(
            select(model).where(model.id > b, model.id <= b + BATCH)
        ).all()
        for o in objs:
            session.delete(o)
        session.commit()
    out["delete"] = time.perf_counter() - start
    session.close()
    base.metadata.drop_all(engine)
    engine.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
