"""Faults: a worker killed mid-save, the database going away, a transaction rolled back.

Nothing half-written may remain: no version without its changeset, no changeset without
versions, the live rows equal their latest versions, and the server goes on serving.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from load_support import (
    ROOT,
    USERS,
    Client,
    Ledger,
    Result,
    check_invariants,
    hot_editor,
    own_editor,
    prepare_database,
    reader,
    serve,
    table_counts,
)

pytestmark = pytest.mark.slow


def _start_clients(
    port: int,
    results: list[Result],
    ledger: Ledger,
    stop: threading.Event,
    counts: tuple[int, int, int] = (4, 2, 2),
) -> list[threading.Thread]:
    makers = [(hot_editor, counts[0]), (own_editor, counts[1]), (reader, counts[2])]
    threads = [
        threading.Thread(
            target=make(port, results, ledger, 7000 + 100 * i + n), args=(stop,), daemon=True
        )
        for i, (make, count) in enumerate(makers)
        for n in range(count)
    ]
    for t in threads:
        t.start()
    return threads


def _join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a client did not stop"


def _serves(port: int) -> bool:
    client = Client(port)
    ok = client.login("load_admin") and client.get("check", "/admin/article/")[0] == 200
    client.close()
    return ok


# --------------------------------------------------------------------------- SIGKILL a worker


def test_worker_killed_mid_save(db_url: str, tmp_path: Path) -> None:
    """SIGKILL workers while they save: nothing half-written, and the server keeps serving."""
    prepare_database(db_url, USERS)
    results: list[Result] = []
    ledger = Ledger()
    stop = threading.Event()
    killed = 0
    with serve(db_url, tmp_path, workers=2) as server:
        threads = _start_clients(server.port, results, ledger, stop)
        try:
            time.sleep(1.5)
            for _ in range(3):
                pids = server.worker_pids()
                assert pids, "no workers"
                os.kill(pids[0], signal.SIGKILL)
                killed += 1
                time.sleep(1.5)
        finally:
            stop.set()
            _join(threads)
        deadline = time.monotonic() + 30
        while not _serves(server.port):
            assert time.monotonic() < deadline, "the server stopped serving after the kills"
            time.sleep(0.5)
    figures = check_invariants(db_url, ledger)
    five = [r for r in results if r.status >= 500]
    dropped = sum(1 for r in results if r.status == 0)
    print(
        f"FAULT sigkill {db_url.split(':')[0]}: {killed} workers killed, {len(results)} "
        f"requests, {dropped} dropped by the kills, {len(ledger.saved)} saves, {figures}"
    )
    assert not five, five[:5]
    assert ledger.saved, "no save was acknowledged"
    assert all(
        status in (0, 409) for _kind, status, _path in ledger.unexpected + [("", 409, "")]
    ), ledger.unexpected[:10]


# --------------------------------------------------------------------------- PostgreSQL away


def _pg_bindir() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return str(found[-1].parent)
    out = subprocess.run(["sh", "-c", "command -v pg_ctl"], capture_output=True, text=True)
    if out.returncode:
        pytest.skip("pg_ctl not found")
    return str(Path(out.stdout.strip()).parent)


def _pg_ctl(cluster: Path, *args: str) -> None:
    cmd = [f"{_pg_bindir()}/pg_ctl", "-D", str(cluster / "data"), *args]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, cwd=cluster, check=True, capture_output=True, timeout=60)


@pytest.fixture
def own_cluster() -> Iterator[tuple[Path, str]]:
    """A throwaway PostgreSQL cluster of this test's own (it gets stopped and started)."""
    if not os.environ.get("VERSIONED_ADMIN_TEST_PG"):
        pytest.skip("PostgreSQL not available: set VERSIONED_ADMIN_TEST_PG (scripts/test.sh does)")
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/pg.sh"), "start", "54391"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode:
        pytest.skip(f"could not start a PostgreSQL cluster: {out.stderr[-500:]}")
    directory, url = out.stdout.split()
    try:
        yield Path(directory), url
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/pg.sh"), "stop", directory], timeout=120)


def test_database_goes_away(own_cluster: tuple[Path, str], tmp_path: Path) -> None:
    """PostgreSQL stopped during load: 503 pages meanwhile, success afterwards, nothing torn."""
    cluster, url = own_cluster
    prepare_database(url, USERS)
    port = sa.make_url(url).port
    results: list[Result] = []
    ledger = Ledger()
    stop = threading.Event()
    pages_while_down: list[tuple[int, str, str]] = []
    with serve(url, tmp_path, workers=2) as server:
        threads = _start_clients(server.port, results, ledger, stop, (3, 1, 2))
        try:
            probe = Client(server.port)
            assert probe.login("load_admin")
            time.sleep(2)
            _pg_ctl(cluster, "-m", "fast", "-w", "stop")
            down_from = len(results)
            time.sleep(1)
            for path in ("/admin/article/", "/admin/article/1/edit", "/login"):
                status, headers, body = probe.get("probe", path)
                pages_while_down.append((status, headers.get("retry-after", ""), body))
            time.sleep(1)
            down_results = results[down_from:]
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={cluster}"
                " -c fsync=off -c max_connections=200"
            )
            _pg_ctl(
                cluster, "-w", "-t", "60", "-o", opts, "-l", str(cluster / "server.log"), "start"
            )
            up_from = len(results)
            time.sleep(3)
        finally:
            stop.set()
            _join(threads)
        assert _serves(server.port), "no success after the database came back"
        log = server.log()
    after = results[up_from:]
    figures = check_invariants(url, ledger)
    statuses = sorted({r.status for r in results})
    print(
        f"FAULT pg-down: {len(results)} requests, statuses {statuses}, "
        f"{sum(r.status == 503 for r in results)} x 503, {figures}"
    )
    for status, retry_after, body in pages_while_down:
        assert status == 503, (status, body[:300])
        assert retry_after and "unavailable" in body.lower()
        assert "Traceback" not in body
    assert any(r.status == 503 for r in down_results)
    assert not [r for r in results if r.status >= 500 and r.status != 503], statuses
    assert not [r for r in results if r.status == 0], "requests dropped"
    assert any(r.status in (200, 302) for r in after), "nothing succeeded after the restart"
    assert "Traceback" not in log or "OperationalError" in log, log[-3000:]


# --------------------------------------------------------------------------- rollback


@pytest.fixture
def demo_app(db_url: str) -> Iterator[Flask]:
    """The demo app (CSRF off), logged-in admin client available via app.test_client()."""
    from app import create_app, db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "SECRET_KEY": "t",
        }
    )
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _counts(app: Flask) -> dict[str, int]:
    return table_counts(app.config["SQLALCHEMY_DATABASE_URI"])


@pytest.mark.parametrize(
    ("path", "fields", "shown"),
    [
        (
            "/admin/author/new",
            {"name": "Dup Person", "email": "ada@example.org", "bio": "typed bio"},
            "typed bio",
        ),
        (
            "/admin/author/2/edit",
            {"name": "Bruno Renamed", "email": "ada@example.org", "bio": "kept text"},
            "kept text",
        ),
        ("/admin/category/new", {"name": "Science", "description": "mine"}, "mine"),
    ],
)
def test_rolled_back_save(
    demo_app: Flask, monkeypatch: pytest.MonkeyPatch, path: str, fields: dict[str, str], shown: str
) -> None:
    """A constraint violation at commit: no version, no changeset, the form again with input."""
    import versioned_admin.admin.forms as admin_forms

    # skip the admin's own unique checks so the database itself refuses the row
    monkeypatch.setattr(admin_forms, "check_form", lambda *a, **k: True)
    client = demo_app.test_client()
    client.post("/login", data={"username": "admin", "password": "admin"})
    page = client.get(path)
    assert page.status_code == 200
    base = re.search(r'name="base_version" type="hidden" value="([^"]*)"', page.text)
    data = {**fields, "change_reason": "should vanish"}
    if base:
        data["base_version"] = base.group(1)
    before = _counts(demo_app)
    response = client.post(path, data=data)
    assert response.status_code == 422, response.text[:500]
    assert shown in response.text
    assert "refused" in response.text.lower()
    assert _counts(demo_app) == before
    # the session is usable again: a valid save afterwards works
    data["email"] = "fresh@example.org"
    data.pop("description", None)
    if "category" in path:
        data["name"] = "Fresh category"
    ok = client.post(path, data=data)
    assert ok.status_code == 302, ok.text[:500]
    check_invariants(demo_app.config["SQLALCHEMY_DATABASE_URI"])
