"""history_depth and diff_page: the history pages through the Flask test client.

history_depth: one record with 10, 1,000 and 100,000 versions (quick mode: 20,000); the
timeline's first page, the diff page of a pair in the middle and ``get_version`` of version k,
each against the same at 10 versions. The versions beyond the first are inserted directly
with Core ``executemany`` (one changeset each), as the engine would have stored them.

diff_page: the diff page of a 1 MB text with 200 scattered edits, its time and HTML size
against difflib.HtmlDiff's table for the same texts.
"""

import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench_diff import EDITS, html_diff_with_timeout, make_text, scatter_edits
from common import result, stats

DEPTHS = (10, 1_000, 100_000)
QUICK_MAX = 20_000
BATCH = 5_000
GOAL_MS = 0.020


def _build(url: str) -> tuple[Any, Any, Any]:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy import Integer, String, Text
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

    from versioned_admin import Versioned, VersionedAdmin

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Doc(Versioned, db.Model):  # type: ignore[name-defined, misc]
        __tablename__ = "bench_hist_doc"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(200))
        body: Mapped[str] = mapped_column(Text)
        views: Mapped[int] = mapped_column(Integer)

    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY="bench", VERSIONED_ADMIN_OPEN=True)
    db.init_app(app)
    admin = VersionedAdmin(db=db)
    admin.register(Doc)
    admin.init_app(app)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app, db, Doc


def _deepen(db: Any, model: type, doc_id: int, depth: int) -> None:
    """Give a record ``depth`` versions: copies of version 1 with views = n, one changeset each."""
    from sqlalchemy import func, select, update

    from versioned_admin.versioning import model_info

    info = model_info(model)
    assert info is not None and info.version_table is not None
    vt, cs = info.version_table, info.changesets
    with db.engine.begin() as conn:
        first = conn.execute(select(vt).where(vt.c.id == doc_id, vt.c.version == 1)).one()
        start_cs = int(conn.execute(select(func.max(cs.c.id))).scalar_one() or 0) + 1
        base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for lo in range(2, depth + 1, BATCH):
            numbers = range(lo, min(depth, lo + BATCH - 1) + 1)
            conn.execute(cs.insert(), [
                {"id": start_cs + n, "issued_at": base + dt.timedelta(seconds=n),
                 "user": f"user{n % 7}", "reason": None}
                for n in numbers
            ])
            conn.execute(vt.insert(), [
                {"id": doc_id, "version": n, "operation": "update", "reverted_from": None,
                 "changeset_id": start_cs + n, "state": {**first.state, "views": n},
                 "changed": ["views"]}
                for n in numbers
            ])
        conn.execute(update(info.table).where(info.table.c.id == doc_id).values(views=depth))
        if conn.dialect.name == "postgresql":
            # explicit ids do not advance the sequence; later engine inserts would collide
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{cs.name}', 'id'), "
                f"(SELECT max(id) FROM {cs.name}))"
            )


def _time(fn: Callable[[], Any], repeat: int) -> list[float]:
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _depth_rows(backend: str, app: Any, db: Any, model: Any, quick: bool) -> list[dict[str, Any]]:
    from versioned_admin.versioning import get_version

    depths = [min(d, QUICK_MAX) if quick else d for d in DEPTHS]
    repeat = 15 if quick else 40
    client = app.test_client()
    measured: dict[int, dict[str, list[float]]] = {}
    for depth in depths:
        with app.app_context():
            doc = model(title=f"doc {depth}", body="short body\n" * 5, views=1)
            db.session.add(doc)
            db.session.commit()
            doc_id = doc.id
        t0 = time.perf_counter()
        with app.app_context():
            _deepen(db, model, doc_id, depth)
        build = time.perf_counter() - t0
        k = max(2, depth // 2)
        history = f"/admin/doc/{doc_id}/history"
        diff = f"/admin/doc/{doc_id}/diff?from={k - 1}&to={k}"
        for u in (history, diff):
            assert client.get(u).status_code == 200, u

        def fetch(doc_id: int = doc_id, k: int = k) -> None:
            with app.app_context():
                get_version(db.session, model, doc_id, k)
                db.session.remove()

        measured[depth] = {
            "timeline": _time(lambda u=history: client.get(u), repeat),
            "diff": _time(lambda u=diff: client.get(u), repeat),
            "get_version": _time(fetch, repeat),
            "build": [build],
        }
    rows = []
    low, high = depths[0], depths[-1]
    for what in ("timeline", "diff", "get_version"):
        base = statistics.median(measured[low][what])
        top = statistics.median(measured[high][what])
        ratio = top / base
        per_depth = {str(d): statistics.median(measured[d][what]) for d in depths}
        rows.append(result(
            f"history_depth ({what})", backend, top, base, f"same at {low} versions", "s",
            "<= 2x the 10-version time; <= 20 ms on SQLite",
            ratio <= 2 and (backend != "sqlite" or top <= GOAL_MS),
            depth=high, per_depth=per_depth, ours_stats=stats(measured[high][what]),
            build_seconds=measured[high]["build"][0],
            note=f"{high:,} versions vs {low}; median of {repeat}",
        ))
    return rows


def _diff_page_row(backend: str, app: Any, db: Any, model: Any, quick: bool) -> dict[str, Any]:
    lines, words = make_text(7)
    old = "".join(lines)
    new = "".join(scatter_edits(lines, words, EDITS, 8))
    with app.app_context():
        doc = model(title="long", body=old, views=0)
        db.session.add(doc)
        db.session.commit()
        doc.body = new
        db.session.commit()
        doc_id = doc.id
        doc.body = old
        db.session.commit()
        doc.body = "".join(scatter_edits(lines, words, 20, 9))
        db.session.commit()
    client = app.test_client()
    url = f"/admin/doc/{doc_id}/diff?from=1&to=2"
    html = client.get(url).get_data()
    few = len(client.get(f"/admin/doc/{doc_id}/diff?from=3&to=4").get_data())
    times = _time(lambda: client.get(url), 3 if quick else 10)
    baseline = html_diff_with_timeout(old, new, 60.0)
    ours = statistics.median(times)
    base_size = baseline[1] if baseline else None
    return result(
        "diff_page", backend, ours, baseline[0] if baseline else None,
        "difflib.HtmlDiff (table only)", "s",
        "HTML < HtmlDiff table, grows with the changes; page <= 1 s",
        ours <= 1.0 and (base_size is None or len(html) < base_size),
        html_bytes=len(html), html_bytes_20_edits=few, baseline_html_chars=base_size,
        text_bytes=len(old),
        ours_stats=stats(times),
        note=f"1 MB text, {EDITS} edits: {len(html) / 1e3:,.0f} kB HTML vs HtmlDiff "
        + (f"{base_size / 1e6:.1f} MB" if base_size else "(timed out)")
        + f"; 20 edits: {few / 1e3:,.0f} kB",
    )


def run(backend: str, url: str | None, quick: bool) -> list[dict[str, Any]]:
    """Measure the history pages at several depths, and the diff page of a long text."""
    tmp = tempfile.mkdtemp(prefix="va_bench_history_")
    target = url or f"sqlite:///{os.path.join(tmp, 'history.db')}"
    app, db, model = _build(target)
    try:
        rows = _depth_rows(backend, app, db, model, quick)
        rows.append(_diff_page_row(backend, app, db, model, quick))
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
    return rows


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("sqlite", None, "--quick" in sys.argv), indent=1, default=str))
