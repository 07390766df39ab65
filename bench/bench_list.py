"""list_page: our list view vs Flask-Admin's ModelView over the same 100,000 rows.

Both admins are mounted in one Flask app on one database and driven through the Flask
test client, alternating request by request, so the ratio compares like with like.
"""


import datetime as dt
import os
import statistics
import tempfile
import time
import warnings
from typing import Any

from common import result, stats

ROWS = 100_000


def _build(url: str) -> tuple[Any, Any]:
    from flask import Flask
    from flask_admin import Admin
    from flask_admin.contrib.sqla import ModelView
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy import Boolean, DateTime, Integer, String, Text
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    from versioned_admin import Versioned, VersionedAdmin

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Row(Versioned, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "bench_row"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(200))
        body: Mapped[str] = mapped_column(Text)
        score: Mapped[int] = mapped_column(Integer)
        active: Mapped[bool] = mapped_column(Boolean)
        created_at: Mapped[dt.datetime] = mapped_column(DateTime)

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SECRET_KEY="bench",
        VERSIONED_ADMIN_OPEN=True,
        WTF_CSRF_ENABLED=False,
    )
    db.init_app(app)
    ours = VersionedAdmin(db=db)
    ours.register(Row, list_columns=["id", "title", "score", "active", "created_at"], page_size=20)
    ours.init_app(app)

    class RowView(ModelView):  # type: ignore[misc]
        column_list = ["id", "title", "score", "active", "created_at"]
        page_size = 20

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fa = Admin(app, name="fa", url="/fa", endpoint="fa")
        fa.add_view(RowView(Row, db.session, endpoint="fa_row", url="/fa/row"))
    with app.app_context():
        db.drop_all()
        db.create_all()
        body = "x" * 200
        now = dt.datetime(2026, 1, 1)
        table = Row.__table__
        with db.engine.begin() as conn:
            for start in range(0, ROWS, 10_000):
                conn.execute(
                    table.insert(),
                    [
                        {
                            "title": f"row {i}",
                            "body": body,
                            "score": i,
                            "active": i % 2 == 0,
                            "created_at": now,
                        }
                        for i in range(start, start + 10_000)
                    ],
                )
    return app, db


def run(backend: str, url: str | None, quick: bool) -> list[dict[str, Any]]:
    """Measure page 1 and page 500 of both admins."""
    tmp = tempfile.mkdtemp(prefix="va_bench_list_")
    target = url or f"sqlite:///{os.path.join(tmp, 'list.db')}"
    app, db = _build(target)
    client = app.test_client()
    n = 20 if quick else 50
    pages = {  # Flask-Admin counts pages from 0
        "page 1": ("/admin/row/", "/fa/row/"),
        "page 500": ("/admin/row/?page=500", "/fa/row/?page=499"),
    }
    out: list[dict[str, Any]] = []
    for label, (ours_url, fa_url) in pages.items():
        for u in (ours_url, fa_url):  # warm-up
            for _ in range(3):
                resp = client.get(u)
                assert resp.status_code == 200, (u, resp.status_code)
        ours_t: list[float] = []
        fa_t: list[float] = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.get(ours_url)
            ours_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.get(fa_url)
            fa_t.append(time.perf_counter() - t0)
        ratios = [o / f for o, f in zip(ours_t, fa_t, strict=True)]
        ratio = statistics.median(ratios)
        ours_med = statistics.median(ours_t)
        row = result(
            f"list_page ({label})",
            backend,
            ours_med,
            statistics.median(fa_t),
            "Flask-Admin ModelView",
            "s",
            "<= 0.25x Flask-Admin; <= 15 ms on SQLite",
            ratio <= 0.25 and (backend != "sqlite" or ours_med <= 0.015),
            requests=n,
            rows=ROWS,
            ours_stats=stats(ours_t),
            baseline_stats=stats(fa_t),
            note=f"median of {n} paired requests over {ROWS:,} rows",
        )
        row["ratio"] = ratio
        out.append(row)
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    return out
