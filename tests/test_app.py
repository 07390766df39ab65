"""The demo host app (app.py) via the Flask test client: factory, seed, login, CLI, admin."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

import app as demo
from app import (
    Article,
    ArticleStatus,
    Author,
    Category,
    PriceQuote,
    User,
    create_app,
    db,
    is_safe_next,
    normalize_database_url,
    seed_demo_data,
)
from versioned_admin.versioning import (
    deleted_records,
    get_live,
    latest_version,
    live_select,
    versions,
)

GENERIC_LOGIN_ERROR = "Invalid username or password."


# --------------------------------------------------------------------------- fixtures


def _make_app(url: str, *, csrf: bool = False, **extra: Any) -> Flask:
    """The demo app on ``url`` in testing mode."""
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "TESTING": True,
            "WTF_CSRF_ENABLED": csrf,
            "SECRET_KEY": "test-secret",
            **extra,
        }
    )


def _dispose(app: Flask) -> None:
    """Release the app's connections (PostgreSQL would otherwise wait on locks)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The seeded demo app, CSRF off."""
    monkeypatch.delenv("DEMO_ADMIN_USER", raising=False)
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    application = _make_app(db_url)
    yield application
    _dispose(application)


@pytest.fixture
def csrf_app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The seeded demo app with CSRF protection on, as in production."""
    monkeypatch.delenv("DEMO_ADMIN_USER", raising=False)
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    application = _make_app(db_url, csrf=True)
    yield application
    _dispose(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the demo app."""
    return app.test_client()


def login(client: FlaskClient, username: str = "admin", password: str = "admin", **kw: Any) -> Any:
    """POST the login form (no CSRF token: for apps with CSRF off)."""
    return client.post("/login", data={"username": username, "password": password, **kw})


class _FormParser(HTMLParser):
    """Collects the fields of every <form> on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {"action": a.get("action", ""), "method": a.get("method", "get"), "fields": {}}
            )
        if not self.forms:
            return
        fields = self.forms[-1]["fields"]
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields[name] = a.get("value", "y")
            elif kind not in ("submit", "button", "image", "reset", "file"):
                fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
            fields.setdefault(name, None)
        elif tag == "option" and self._select:
            if fields.get(self._select) is None or "selected" in a:
                fields[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            fields[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea and self.forms:
            # as a browser does: drop one leading newline, submit line breaks as CRLF
            fields = self.forms[-1]["fields"]
            text = fields[self._textarea].replace("\r\n", "\n")
            text = text.removeprefix("\n")
            fields[self._textarea] = text.replace("\n", "\r\n")
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1]["fields"][self._textarea] += data


def form_with(html: str, field: str) -> dict[str, Any]:
    """The fields of the first form on the page that has a field named ``field``."""
    parser = _FormParser()
    parser.feed(html)
    for form in parser.forms:
        if field in form["fields"]:
            return {k: ("" if v is None else v) for k, v in form["fields"].items()}
    raise AssertionError(f"no form with a field {field!r}")


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the form on ``path``."""
    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert m, "no csrf_token on the page"
    return m.group(1)


def admin_url(app: Flask, endpoint: str, **values: Any) -> str:
    """url_for an admin endpoint, outside a request."""
    with app.test_request_context():
        from flask import url_for

        return url_for(f"versioned_admin.{endpoint}", **values)


def model_slug(model: type) -> str:
    """The admin's URL slug of a model."""
    return model.__name__.lower()


def count(model: type) -> int:
    """Rows of ``model`` (all rows, including old versions for the rows strategy)."""
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_database_url(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "http:/evil.com",
        "javascript:alert(1)",
        "/\tevil.com",
        "///evil.com",
        "evil.com",
        "",
        None,
    ],
)
def test_unsafe_next_targets(target: str | None) -> None:
    assert not is_safe_next(target)


@pytest.mark.parametrize("target", ["/admin/", "/admin/article/?q=x&page=2", "/"])
def test_safe_next_targets(target: str) -> None:
    assert is_safe_next(target)


def test_secret_key_generated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    key = demo._secret_key(str(tmp_path))
    assert len(key) >= 32
    assert demo._secret_key(str(tmp_path)) == key  # kept, so workers and restarts agree
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert demo._secret_key(str(tmp_path)) == "from-env"


# --------------------------------------------------------------------------- factory and seed


def test_factory_config(app: Flask) -> None:
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert "versioned_admin" in app.extensions
    assert "versioned_admin" in app.blueprints
    assert app.config.get("VERSIONED_ADMIN_URL_PREFIX", "/admin") == "/admin"
    with app.app_context():
        assert (
            db.engine.url.render_as_string()
            == sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string()
        )


def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "env-key")
    application = create_app({"TESTING": True})
    try:
        assert application.config["SQLALCHEMY_DATABASE_URI"] == url
        assert application.config["SECRET_KEY"] == "env-key"
        assert (tmp_path / "from-env.db").exists()
    finally:
        _dispose(application)


def test_sqlite_waits_for_writers(tmp_path: Path) -> None:
    application = _make_app(f"sqlite:///{tmp_path / 'wal.db'}", DEMO_SEED=False)
    try:
        with application.app_context(), db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        _dispose(application)


def test_demo_data_present(app: Flask) -> None:
    with app.app_context():
        assert count(Author) == 5
        assert count(Category) == 4
        assert count(Article) == 11  # 12 imported, one deleted
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
        quotes = db.session.scalars(live_select(PriceQuote)).all()
        assert {q.sku for q in quotes} == {
            "SUB-MONTH",
            "SUB-YEAR",
            "SUB-STUDENT",
            "ARCHIVE",
            "PRINT-WEEKEND",
        }
        long_body = db.session.scalars(select(Article.body)).first()
        assert long_body and long_body.count("\n\n") >= 2

        art = db.session.scalar(select(Article).where(Article.title.like("Reading last%")))
        assert art is not None
        history = versions(db.session, Article, (art.id,))
        assert [v.number for v in history] == [2, 1]
        assert history[0].changeset.user == "chiara"
        assert history[0].changeset.reason == "Fix typo in the headline"
        assert history[1].changeset.user == "import"
        assert history[0].changed == ("title",)

        monthly = get_live(db.session, PriceQuote, ("SUB-MONTH",))
        assert monthly is not None and monthly.price == Decimal("10.90")
        quote_history = versions(db.session, PriceQuote, ("SUB-MONTH",))
        assert [v.number for v in quote_history] == [2, 1]
        assert quote_history[0].changeset.reason == "Price rise from July"
        assert quote_history[1].state["price"] == Decimal("9.90")

        deleted = deleted_records(db.session, Article)
        assert len(deleted) == 1 and deleted[0].changeset.reason == "Duplicate of an older piece"

        users = {
            cs.user
            for model in (Article, Author, PriceQuote)
            for obj_pk in _all_pks(model)
            for cs in (v.changeset for v in versions(db.session, model, obj_pk))
        }
        assert {"import", "chiara", "esther", "bruno", "admin"} <= users


def _all_pks(model: type) -> list[tuple[Any, ...]]:
    """Logical primary keys of the live records of ``model``."""
    if model is PriceQuote:
        return [
            (s,)
            for s in db.session.scalars(live_select(PriceQuote).with_only_columns(PriceQuote.sku))
        ]
    return [(i,) for i in db.session.scalars(select(model.id))]  # type: ignore[attr-defined]


def test_seed_is_idempotent(app: Flask, db_url: str) -> None:
    with app.app_context():
        before = (count(Author), count(Article), count(PriceQuote), count(User))
        assert seed_demo_data() is False
    again = _make_app(db_url)  # a second start on the same database seeds nothing
    try:
        with again.app_context():
            assert (count(Author), count(Article), count(PriceQuote), count(User)) == before
    finally:
        _dispose(again)


def test_no_seed_when_disabled(tmp_path: Path) -> None:
    application = _make_app(f"sqlite:///{tmp_path / 'empty.db'}", DEMO_SEED=False)
    try:
        with application.app_context():
            assert count(Author) == 0 and count(User) == 0
    finally:
        _dispose(application)


def test_demo_admin_from_environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_ADMIN_USER", "boss")
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "correct horse")
    application = _make_app(db_url)
    try:
        c = application.test_client()
        assert login(c, "admin", "admin").status_code == 401
        assert login(c, "boss", "correct horse").status_code == 302
    finally:
        _dispose(application)


def test_passwords_are_hashed(app: Flask) -> None:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "admin"))
        assert user is not None
        assert "admin" not in user.password_hash
        assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))
        assert user.check_password("admin") and not user.check_password("Admin")


# --------------------------------------------------------------------------- pages and login


def test_home_links_to_admin(client: FlaskClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert 'href="/admin/"' in resp.get_data(as_text=True)


def test_security_headers(client: FlaskClient) -> None:
    resp = client.get("/login")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Referrer-Policy"]


def test_login_page(client: FlaskClient) -> None:
    resp = client.get("/login?next=/admin/article/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'name="username"' in html and 'type="password"' in html
    assert 'value="/admin/article/"' in html


def test_login_success_goes_to_admin(client: FlaskClient) -> None:
    resp = login(client)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize(("username", "password"), [("admin", "wrong"), ("nobody", "admin")])
def test_failed_login_is_generic(client: FlaskClient, username: str, password: str) -> None:
    """Wrong password and unknown user get the same 401 page: it never says which part was wrong."""
    resp = login(client, username, password)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 401
    assert GENERIC_LOGIN_ERROR in html
    for hint in ("no such user", "unknown user", "wrong password", "incorrect password"):
        assert hint not in html.lower()
    assert f'value="{username}"' in html  # the username is kept...
    assert f'value="{password}"' not in html  # ...the password is not echoed
    assert client.get("/admin/").status_code == 302  # still anonymous


def test_failed_login_pages_are_identical(client: FlaskClient) -> None:
    a = login(client, "admin", "wrong").get_data(as_text=True)
    b = login(client, "nobody", "wrong").get_data(as_text=True)
    assert a.replace('value="admin"', "") == b.replace('value="nobody"', "")


def test_login_missing_fields(client: FlaskClient) -> None:
    resp = client.post("/login", data={"username": "", "password": ""})
    assert resp.status_code == 400
    assert "This field is required." in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    "target", ["//evil.com", "https://evil.com", "/\\evil.com", "\\\\evil.com", "///evil.com/x"]
)
def test_next_cannot_redirect_off_site(client: FlaskClient, target: str) -> None:
    resp = login(client, next=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/admin/"


def test_next_local_path_is_honoured(client: FlaskClient) -> None:
    resp = login(client, next="/admin/article/?q=diffs")
    assert resp.headers["Location"] == "/admin/article/?q=diffs"


def test_session_cookie_flags(client: FlaskClient) -> None:
    resp = login(client)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here


def test_session_cookie_secure_over_https(client: FlaskClient) -> None:
    resp = client.post(
        "/login", data={"username": "admin", "password": "admin"}, base_url="https://localhost"
    )
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_rotated_on_login(client: FlaskClient) -> None:
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    login(client)
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.get("_user_id")


def test_login_and_logout_need_csrf(csrf_app: Flask) -> None:
    c = csrf_app.test_client()
    # no token: refused
    resp = c.post("/login", data={"username": "admin", "password": "admin"})
    assert resp.status_code == 400
    assert c.get("/admin/").status_code == 302
    # with the token from the form
    token = csrf_token(c)
    resp = c.post("/login", data={"username": "admin", "password": "admin", "csrf_token": token})
    assert resp.status_code == 302
    assert c.get("/admin/").status_code == 200
    # logout: GET is not allowed, POST without the token is refused
    assert c.get("/logout").status_code == 405
    assert c.post("/logout").status_code == 400
    assert c.get("/admin/").status_code == 200
    token = csrf_token(c, "/")
    resp = c.post("/logout", data={"csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert c.get("/admin/").status_code == 302


def test_logout_is_post_only(client: FlaskClient) -> None:
    login(client)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert client.get("/admin/").status_code == 302


# --------------------------------------------------------------------------- CLI


def test_create_user_cli(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "bob", "--password", "s3cret"])
    assert result.exit_code == 0, result.output
    assert "Created user 'bob' (editor)" in result.output
    with app.app_context():
        bob = db.session.scalar(select(User).where(User.username == "bob"))
        assert bob is not None and bob.role == "editor"
        assert bob.password_hash != "s3cret" and bob.check_password("s3cret")
    c = app.test_client()
    assert login(c, "bob", "s3cret").status_code == 302


def test_create_user_cli_prompts(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "carol", "--role", "admin"], input="pw1\npw1\n")
    assert result.exit_code == 0, result.output
    assert "pw1" not in result.output  # hidden input
    with app.app_context():
        carol = db.session.scalar(select(User).where(User.username == "carol"))
        assert carol is not None and carol.role == "admin" and carol.check_password("pw1")


def test_create_user_cli_refuses_duplicates_and_bad_input(app: Flask) -> None:
    runner = app.test_cli_runner()
    dup = runner.invoke(args=["create-user", "admin", "--password", "x"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    bad_role = runner.invoke(args=["create-user", "dave", "--password", "x", "--role", "root"])
    assert bad_role.exit_code != 0
    empty = runner.invoke(args=["create-user", "erin", "--password", ""])
    assert empty.exit_code != 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


# --------------------------------------------------------------------------- the admin, wired in


def test_admin_refuses_anonymous(app: Flask, client: FlaskClient) -> None:
    for url in (
        "/admin/",
        admin_url(app, "list_view", model=model_slug(Article)),
        admin_url(app, "edit_view", model=model_slug(Article), pk="1"),
    ):
        resp = client.get(url)
        assert resp.status_code == 302, url
        assert resp.headers["Location"].startswith("/login?next="), url
    resp = client.get("/admin/", follow_redirects=True)
    assert resp.request.path == "/login"


def test_anonymous_redirect_round_trip(client: FlaskClient) -> None:
    resp = client.get("/admin/article/?q=diffs")
    next_url = resp.headers["Location"]
    assert next_url.startswith("/login?next=")
    page = client.get(next_url).get_data(as_text=True)
    fields = form_with(page, "username")
    fields.update(username="admin", password="admin")
    resp = client.post("/login", data=fields)
    assert resp.headers["Location"] == "/admin/article/?q=diffs"


def test_viewer_is_refused_by_the_admin(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        demo.create_user("vera", "pw", role="viewer")
        db.session.commit()
    assert login(client, "vera", "pw").status_code == 302
    assert client.get("/admin/").status_code == 403


def test_editor_cannot_delete(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        demo.create_user("ed", "pw", role="editor")
        db.session.commit()
        art_id = db.session.scalar(select(Article.id).order_by(Article.id))
    login(client, "ed", "pw")
    assert client.get("/admin/").status_code == 200
    resp = client.post(admin_url(app, "delete_view", model=model_slug(Article), pk=str(art_id)))
    assert resp.status_code == 403
    with app.app_context():
        assert db.session.get(Article, art_id) is not None


def test_demo_models_listed_in_admin(app: Flask, client: FlaskClient) -> None:
    login(client)
    html = client.get("/admin/").get_data(as_text=True)
    for model in (Article, Author, Category, PriceQuote):
        assert admin_url(app, "list_view", model=model_slug(model)) in html
    assert "demo_user" not in html and "password_hash" not in html
    listing = client.get(admin_url(app, "list_view", model=model_slug(Article)))
    assert listing.status_code == 200
    assert "The quiet art of keeping every version" in listing.get_data(as_text=True)


def test_edit_article_records_a_version(app: Flask, client: FlaskClient) -> None:
    login(client)
    with app.app_context():
        art = db.session.scalar(select(Article).where(Article.slug == "a-field-guide-to-diffs"))
        assert art is not None
        art_id = art.id
    url = admin_url(app, "edit_view", model=model_slug(Article), pk=str(art_id))
    fields = form_with(client.get(url).get_data(as_text=True), "title")
    fields["title"] = "A field guide to diffs, revised"
    fields["change_reason"] = "Sharper headline"
    resp = client.post(url, data=fields)
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:2000]
    with app.app_context():
        latest = latest_version(db.session, Article, (art_id,))
        assert latest is not None and latest.changed == ("title",)
        assert latest.changeset.user == "admin"
        assert latest.changeset.reason == "Sharper headline"
        art = db.session.get(Article, art_id)
        assert art is not None and art.status is ArticleStatus.PUBLISHED


def test_rows_strategy_model_in_admin(app: Flask, client: FlaskClient) -> None:
    login(client)
    slug = model_slug(PriceQuote)
    listing = client.get(admin_url(app, "list_view", model=slug))
    html = listing.get_data(as_text=True)
    assert listing.status_code == 200
    assert "SUB-YEAR" in html and "10.90" in html
    with app.app_context():
        rows_before = count(PriceQuote)
    url = admin_url(app, "edit_view", model=slug, pk="SUB-YEAR")
    page = client.get(url)
    assert page.status_code == 200
    fields = form_with(page.get_data(as_text=True), "product")
    assert fields["price"] in ("99.00", "99")
    fields["price"] = "109.00"
    fields["change_reason"] = "Yearly price rise"
    resp = client.post(url, data=fields)
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:2000]
    with app.app_context():
        live = get_live(db.session, PriceQuote, ("SUB-YEAR",))
        assert live is not None and live.price == Decimal("109.00")
        assert count(PriceQuote) == rows_before + 1  # the old row is kept
        history = versions(db.session, PriceQuote, ("SUB-YEAR",))
        assert [v.number for v in history] == [2, 1]
        assert history[0].changeset.user == "admin"
        assert history[1].state["price"] == Decimal("99.00")
    assert "109.00" in client.get(admin_url(app, "list_view", model=slug)).get_data(as_text=True)
