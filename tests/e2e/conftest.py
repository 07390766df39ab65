"""Real-browser fixtures: Debian's Chromium via Playwright, the demo app served by werkzeug."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from e2e_support import ADMIN_PASSWORD, ADMIN_USER, CHROMIUM, LiveServer
from playwright.sync_api import Page
from werkzeug.serving import make_server


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's Chromium (never a downloaded one) headless."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set "
            "VERSIONED_ADMIN_CHROMIUM); 'playwright install' cannot download browsers here"
        )
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """A desktop-sized viewport and a fixed locale, so screenshots are comparable."""
    return {**browser_context_args, "viewport": {"width": 1280, "height": 860}, "locale": "en-GB"}


def _backends() -> list[str]:
    """SQLite always; PostgreSQL too when VERSIONED_ADMIN_TEST_PG is set."""
    return ["sqlite", "postgresql"] if os.environ.get("VERSIONED_ADMIN_TEST_PG") else ["sqlite"]


@pytest.fixture(scope="session")
def _database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database: a tmp SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'demo.db'}"
        return
    from app import normalize_database_url

    server_url = sa.make_url(normalize_database_url(os.environ["VERSIONED_ADMIN_TEST_PG"]))
    name = f"va_e2e_{uuid.uuid4().hex[:12]}"
    admin_engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every journey once per database backend."""
    if "_database_url" in metafunc.fixturenames:
        metafunc.parametrize("_database_url", _backends(), indirect=True, scope="session")


@pytest.fixture(scope="session")
def live_server(_database_url: str) -> Iterator[LiveServer]:
    """The demo app (seeded, CSRF on) on a free port of 127.0.0.1, for the whole session."""
    from app import create_app, db

    backend = "sqlite" if _database_url.startswith("sqlite") else "postgresql"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEMO_ADMIN_USER", ADMIN_USER)
        mp.setenv("DEMO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        app = create_app({"SQLALCHEMY_DATABASE_URI": _database_url, "SECRET_KEY": "e2e-key"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"e2e-{backend}", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, backend)
    finally:
        server.shutdown()
        thread.join(10)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def logged_in_page(page: Page, live_server: LiveServer) -> Page:
    """A page whose browser context is signed in as the demo admin."""
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    return page
