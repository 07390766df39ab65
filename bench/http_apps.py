"""WSGI apps for the http_throughput benchmark, served by gunicorn.

``ours_app()`` is a demo-like host app with versioned_admin over one 6-column model;
``flask_admin_app()`` is Flask-Admin's ModelView over the same table (not versioned: what a
user would pick instead). Both read the database from ``DATABASE_URL``. Benchmark-only
settings: ``VERSIONED_ADMIN_OPEN`` (no login) and ``WTF_CSRF_ENABLED = False``.

    gunicorn -w 2 -b 127.0.0.1:8000 'http_apps:ours_app()'      (cwd: bench/)
"""

import datetime as dt
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TABLE = "bench_http_row"
LIST_COLUMNS = ["id", "title", "score", "active", "created_at"]
PAGE_SIZE = 20
BODY = ("lorem ipsum dolor sit amet " * 8)[:200]  # as in bench_list.py


def _url() -> str:
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _models(versioned: bool) -> tuple[Any, Any]:
    """(db, Row): a Flask-SQLAlchemy handle and the 6-column model (one ~1 KB text)."""
    from flask_sqlalchemy import SQLAlchemy

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)
    mixins: tuple[type, ...] = ()
    if versioned:
        from versioned_admin import Versioned

        mixins = (Versioned,)

    class Row(*mixins, db.Model):  # type: ignore[misc, name-defined]
        __tablename__ = TABLE
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(200))
        body: Mapped[str] = mapped_column(Text)
        score: Mapped[int] = mapped_column(Integer)
        active: Mapped[bool] = mapped_column(Boolean)
        created_at: Mapped[dt.datetime] = mapped_column(DateTime)

    return db, Row


def _flask(db: Any) -> Any:
    from flask import Flask

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=_url(),
        SECRET_KEY="bench-only",
        VERSIONED_ADMIN_OPEN=True,  # benchmark only: no login
        WTF_CSRF_ENABLED=False,  # benchmark only: the load generator posts without a token
    )
    db.init_app(app)
    return app


def ours_app() -> Any:
    """versioned_admin at /admin over the benchmark table."""
    from versioned_admin import VersionedAdmin

    db, row = _models(versioned=True)
    app = _flask(db)
    admin = VersionedAdmin(db=db)
    admin.register(row, list_columns=LIST_COLUMNS, page_size=PAGE_SIZE)
    admin.init_app(app)
    app.extensions["bench_model"] = row
    return app


def flask_admin_app() -> Any:
    """Flask-Admin's ModelView at /admin over the same table."""
    from flask_admin import Admin
    from flask_admin.contrib.sqla import ModelView

    db, row = _models(versioned=False)
    app = _flask(db)

    class RowView(ModelView):  # type: ignore[misc]
        column_list = LIST_COLUMNS
        page_size = PAGE_SIZE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        admin = Admin(app, name="fa")
        admin.add_view(RowView(row, db.session, endpoint="row", url="/admin/row"))
    return app


def setup(rows: int, edit_records: int, timeline_versions: int) -> None:
    """Create the tables and data (in this process): ``rows`` rows; records 1..edit_records
    get a first version through the ORM, record 1 gets ``timeline_versions`` versions."""
    from sqlalchemy import text

    app = ours_app()
    db, row = app.extensions["sqlalchemy"], app.extensions["bench_model"]
    body = BODY
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    with app.app_context():
        db.drop_all()
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:  # two workers write: readers must not block
                conn.execute(text("PRAGMA journal_mode=WAL"))
        db.create_all()
        # records 1..edit_records through the ORM, so each has version 1 (an insert)
        for lo in range(0, edit_records, 100):
            db.session.add_all(
                row(id=i, title=f"row {i}", body=body, score=i, active=True, created_at=now)
                for i in range(lo + 1, min(edit_records, lo + 100) + 1)
            )
            db.session.commit()
        table = row.__table__
        with db.engine.begin() as conn:  # the rest, unversioned, with Core (fast)
            for lo in range(edit_records, rows, 10_000):
                conn.execute(
                    table.insert(),
                    [
                        {"id": i, "title": f"row {i}", "body": body, "score": i,
                         "active": i % 2 == 0, "created_at": now}
                        for i in range(lo + 1, min(rows, lo + 10_000) + 1)
                    ],
                )
        first = db.session.get(row, 1)
        for n in range(timeline_versions - 1):
            first.score = 1_000_000 + n
            db.session.commit()
        db.session.remove()
        db.engine.dispose()


def teardown() -> None:
    """Drop the benchmark tables."""
    app = ours_app()
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        db.drop_all()
        db.engine.dispose()
