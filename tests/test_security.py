"""Security: access on every admin route, CSRF, safe GETs, XSS, SQL injection, login, headers.

Runs the demo app (app.py) through Flask's test client with CSRF protection on, as in
production. Routes are enumerated from ``app.url_map`` so a new admin page is covered too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from load_support import table_counts
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

PASSWORD = "sec-pass-1"
ROLES = {"sec_admin": "admin", "sec_editor": "editor", "sec_viewer": "viewer"}
SAMPLE = {
    "model": "article",
    "pk": "3",
    "number": "1",
    "rest": "no/such/page",
    "field": "settings",
    "key": "theme",
}
XSS = '<script>alert(1)</script>" onmouseover="alert(2)" javascript:alert(3)'
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PROBES: dict[str, int] = {}


def _make(url: str) -> Flask:
    from app import create_app, create_user, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "SECRET_KEY": "s"})
    with app.app_context():
        for name, role in ROLES.items():
            create_user(name, PASSWORD, role)
        db.session.commit()
    return app


def _dispose(app: Flask) -> None:
    from app import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """The seeded demo app on a SQLite file, CSRF on, three users."""
    application = _make(f"sqlite:///{tmp_path / 'sec.db'}")
    yield application
    _dispose(application)


@pytest.fixture
def any_app(db_url: str) -> Iterator[Flask]:
    """The same on SQLite and PostgreSQL (for the SQL-injection probes)."""
    application = _make(db_url)
    yield application
    _dispose(application)


def _token(client: FlaskClient, path: str = "/login") -> str:
    match = _CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def _login(app: Flask, user: str | None, base_url: str = "http://localhost") -> FlaskClient:
    client = app.test_client()
    if user is not None:
        r = client.post(
            "/login",
            base_url=base_url,
            data={"username": user, "password": PASSWORD, "csrf_token": _token(client)},
        )
        assert r.status_code == 302, r.get_data(as_text=True)[:300]
    return client


def _admin_rules(app: Flask) -> list[Rule]:
    rules = [
        r
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("versioned_admin.") and not r.endpoint.endswith(".static")
    ]
    assert len(rules) >= 12, [r.rule for r in rules]
    return rules


def _url(rule: Rule, **over: str) -> str:
    values = {**SAMPLE, **over}
    path = rule.rule
    for arg in rule.arguments:
        path = re.sub(rf"<(?:[a-z]+:)?{arg}>", values[arg], path)
    return path


def _methods(rule: Rule) -> list[str]:
    return [m for m in ("GET", "POST") if m in (rule.methods or set())]


def _counts(app: Flask) -> dict[str, int]:
    return table_counts(app.config["SQLALCHEMY_DATABASE_URI"])


def _count(kind: str, n: int = 1) -> None:
    PROBES[kind] = PROBES.get(kind, 0) + n


# --------------------------------------------------------------------------- access


def test_every_admin_route_refuses_anonymous_and_viewer(app: Flask) -> None:
    """Anonymous: login redirect (or 403); a logged-in viewer: 403. Nothing changes."""
    before = _counts(app)
    anon = app.test_client()
    viewer = _login(app, "sec_viewer")
    for rule in _admin_rules(app):
        url = _url(rule)
        for method in _methods(rule):
            for who, client in (("anonymous", anon), ("viewer", viewer)):
                data = {"csrf_token": _token(client)} if method == "POST" else None
                r = client.open(url, method=method, data=data)
                _count("access refused")
                if who == "anonymous":
                    assert r.status_code in (302, 403), (method, url, r.status_code)
                    if r.status_code == 302:
                        assert urlsplit(r.headers["Location"]).path == "/login"
                else:
                    assert r.status_code == 403, (who, method, url, r.status_code)
                assert "Traceback" not in r.get_data(as_text=True)
    assert _counts(app) == before


def test_editor_cannot_delete_revert_or_restore(app: Flask) -> None:
    """The demo's editor may edit but not delete, revert or restore (their own rules)."""
    before = _counts(app)
    editor = _login(app, "sec_editor")
    token = _token(editor, "/admin/article/3/edit")
    for method, url in [
        ("GET", "/admin/article/3/delete"),
        ("POST", "/admin/article/3/delete"),
        ("GET", "/admin/article/3/revert/1"),
        ("POST", "/admin/article/3/revert/1"),
        ("POST", "/admin/article/10/restore"),
        ("POST", "/admin/pricequote/SUB-MONTH/revert/1"),
    ]:
        r = editor.open(url, method=method, data={"csrf_token": token, "seen_version": "2"})
        _count("access refused")
        assert r.status_code == 403, (method, url, r.status_code)
    assert _counts(app) == before
    page = editor.get("/admin/article/3/history").get_data(as_text=True)
    assert "/revert/" not in page and "/delete" not in re.sub(r"/deleted", "", page)


# --------------------------------------------------------------------------- CSRF, safe GETs


def test_every_post_needs_csrf(app: Flask) -> None:
    """Every POST route refuses a missing or forged token with 400, changing nothing."""
    admin = _login(app, "sec_admin")
    before = _counts(app)
    posts = [r for r in _admin_rules(app) if "POST" in _methods(r)]
    assert posts
    extra = {"title": "x", "name": "x", "seen_version": "2", "base_version": "2"}
    for rule in posts:
        for data in ({**extra}, {**extra, "csrf_token": "forged.token.value"}):
            r = admin.post(_url(rule, pk="10" if "restore" in rule.rule else "3"), data=data)
            _count("csrf refused")
            assert r.status_code == 400, (rule.rule, r.status_code)
    for path in ("/logout", "/login"):
        r = admin.post(path, data={"username": "sec_admin", "password": PASSWORD})
        assert r.status_code == 400
    assert _counts(app) == before


def test_get_never_changes_data(app: Flask) -> None:
    """GET every admin route (with sample arguments and edge ones): table counts unchanged."""
    admin = _login(app, "sec_admin")
    before = _counts(app)
    for rule in _admin_rules(app):
        if "GET" not in _methods(rule):
            continue
        for over in ({}, {"pk": "10"}, {"model": "pricequote", "pk": "SUB-MONTH"}, {"number": "2"}):
            r = admin.get(_url(rule, **over) + "?from=1&to=2&page=2&sort=-id")
            _count("safe GET")
            assert r.status_code < 500, (rule.rule, over, r.status_code)
    assert _counts(app) == before


# --------------------------------------------------------------------------- XSS


def _store_payload(app: Flask) -> None:
    from app import Article, Author, Category, PriceQuote, db
    from versioned_admin.versioning import get_live, set_reason, set_user

    with app.app_context():
        set_user(db.session, XSS)
        set_reason(db.session, XSS)
        art = db.session.get(Article, 3)
        art.title, art.body, art.slug = XSS, XSS + "\nline two " + XSS, "x" + XSS
        art.meta = {XSS: XSS}
        author = db.session.get(Author, 1)
        author.name, author.bio = XSS, XSS
        cat = db.session.get(Category, 1)
        cat.name, cat.description = XSS, XSS
        quote = get_live(db.session, PriceQuote, ("SUB-YEAR",))
        quote.product, quote.notes = XSS, XSS
        db.session.commit()
        set_reason(db.session, XSS)
        db.session.delete(db.session.get(Article, 4))
        db.session.commit()


def _assert_inert(page: str, where: str) -> None:
    assert "<script>alert" not in page, where
    assert '" onmouseover=' not in page and "' onmouseover=" not in page, where
    assert not re.search(
        r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", page, re.I
    ), where


def test_stored_script_is_inert_on_every_page(app: Flask) -> None:
    """<script>, an attribute break and a javascript: URL in every field are shown escaped."""
    _store_payload(app)
    admin = _login(app, "sec_admin")
    pages = [
        "/admin/",
        "/admin/article/",
        "/admin/author/",
        "/admin/category/",
        "/admin/pricequote/",
        "/admin/article/?q=script",
        "/admin/article/3/edit",
        "/admin/author/1/edit",
        "/admin/category/1/edit",
        "/admin/pricequote/SUB-YEAR/edit",
        "/admin/article/3/history",
        "/admin/article/3/diff?from=1&to=current",
        "/admin/author/1/diff?from=1&to=2",
        "/admin/pricequote/SUB-YEAR/history",
        "/admin/article/3/revert/1",
        "/admin/activity",
        "/admin/activity?user=" + XSS,
        "/admin/article/deleted",
        "/admin/article/4/history",
        "/admin/article/1/edit",
        "/admin/article/new",
        "/admin/article/3/delete",
    ]
    shown = 0
    for path in pages:
        r = admin.get(path)
        page = r.get_data(as_text=True)
        assert r.status_code == 200, (path, r.status_code)
        _assert_inert(page, path)
        shown += "&lt;script&gt;alert(1)" in page
        _count("xss page")
    assert shown >= len(pages) - 3, "the payload should be visible (escaped) on most pages"
    # the conflict page: a stale edit that posts the payload
    form = admin.get("/admin/article/3/edit").get_data(as_text=True)
    token = _CSRF.search(form).group(1)  # type: ignore[union-attr]
    fields = {
        "csrf_token": token,
        "base_version": "1",
        "title": XSS + " mine",
        "slug": "s-x",
        "author": "1",
        "status": "draft",
        "body": XSS,
        "change_reason": XSS,
    }
    r = admin.post("/admin/article/3/edit", data=fields)
    assert r.status_code == 409
    _assert_inert(r.get_data(as_text=True), "conflict page")
    assert "&lt;script&gt;alert(1)" in r.get_data(as_text=True)
    # a form error page re-shows the input escaped
    r = admin.post("/admin/author/new", data={"csrf_token": token, "name": XSS * 3, "email": XSS})
    assert r.status_code == 422
    _assert_inert(r.get_data(as_text=True), "form error page")
    _count("xss page", 2)


# --------------------------------------------------------------------------- SQL injection


INJECTIONS = [
    "title; DROP TABLE article--",
    "(SELECT 1)",
    "1=1",
    "id) OR (1=1",
    "-id desc, (select 1)",
    "' OR '1'='1",
    "'; DROP TABLE article_version; --",
    '" OR ""="',
    "%' OR 1=1 --",
    "1 UNION SELECT password_hash FROM demo_user",
    "\x00",
    'title COLLATE "C"',
]


def test_sort_filter_search_cannot_inject_sql(any_app: Flask) -> None:
    """Whitelisted columns, bound values: hostile parameters give no 5xx and change nothing."""
    admin = _login(any_app, "sec_admin")
    before = _counts(any_app)
    total = admin.get("/admin/article/").get_data(as_text=True).count('class="va-row')
    for bad in INJECTIONS:
        for params in (
            {"sort": bad},
            {"q": bad},
            {"f_status": bad},
            {"f_author": bad},
            {"f_is_featured": bad},
            {"f_category": bad},
            {"page": bad},
        ):
            r = admin.get("/admin/article/", query_string=params)
            _count("sql probe")
            assert r.status_code in (200, 400), (params, r.status_code)
            page = r.get_data(as_text=True)
            assert "scrypt:" not in page and "pbkdf2:" not in page
            if "q" in params and r.status_code == 200 and total:
                assert page.count('class="va-row') <= total
        for path in ("/admin/activity", "/admin/pricequote/", "/admin/author/"):
            r = admin.get(
                path,
                query_string={
                    "user": bad,
                    "model": bad,
                    "sort": bad,
                    "q": bad,
                    "f_currency": bad,
                    "from": bad,
                    "to": bad,
                },
            )
            _count("sql probe")
            assert r.status_code in (200, 400), (path, bad, r.status_code)
        r = admin.get("/admin/article/3/diff", query_string={"from": bad, "to": bad})
        assert r.status_code in (400, 404), (bad, r.status_code)
        _count("sql probe")
    assert _counts(any_app) == before


# --------------------------------------------------------------------------- login


def test_passwords_are_hashed(app: Flask) -> None:
    """Stored passwords are salted hashes, never the password."""
    from app import User, db

    with app.app_context():
        users = db.session.scalars(db.select(User)).all()
        hashes = [u.password_hash for u in users]
    assert len(set(hashes)) == len(hashes)
    for h in hashes:
        assert h.startswith(("scrypt:", "pbkdf2:")) and PASSWORD not in h and "admin" != h


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/%0d%0aLocation:%20http://evil",
        "///evil",
        " //evil.example",
        "/\t/evil.example",
        "https:evil.example",
    ],
)
def test_no_open_redirect_after_login(app: Flask, target: str) -> None:
    """``next`` can only send the user to a path on this site."""
    client = app.test_client()
    r = client.post(
        "/login",
        data={
            "username": "sec_admin",
            "password": PASSWORD,
            "next": target,
            "csrf_token": _token(client),
        },
    )
    _count("open-redirect probe")
    assert r.status_code == 302
    location = r.headers["Location"]
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost"), location
    assert parts.path.startswith("/") and not parts.path.startswith("//"), location
    assert "evil" not in parts.netloc
    # the anonymous redirect to the login page keeps next local as well
    anon = app.test_client().get("/admin/article/", query_string={"next": target})
    assert urlsplit(anon.headers["Location"]).netloc in ("", "localhost")


def test_local_next_is_followed(app: Flask) -> None:
    """A plain local path in ``next`` is honoured."""
    client = app.test_client()
    r = client.post(
        "/login",
        data={
            "username": "sec_admin",
            "password": PASSWORD,
            "next": "/admin/author/",
            "csrf_token": _token(client),
        },
    )
    assert urlsplit(r.headers["Location"]).path == "/admin/author/"


def _session_cookie(r: TestResponse) -> str:
    cookies = [c for c in r.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, r.headers
    return cookies[-1]


@pytest.mark.parametrize("base_url", ["http://localhost", "https://localhost"])
def test_session_cookie_flags_and_rotation(app: Flask, base_url: str) -> None:
    """HttpOnly + SameSite=Lax (+ Secure over HTTPS); the session is new after login."""
    client = app.test_client()
    page = client.get("/login", base_url=base_url).get_data(as_text=True)
    token = _CSRF.search(page).group(1)  # type: ignore[union-attr]
    with client.session_transaction(base_url=base_url) as s:
        s["planted"] = "from-before-login"
        before_token = s.get("csrf_token")
    r = client.post(
        "/login",
        base_url=base_url,
        headers={"Referer": base_url + "/login"},  # Flask-WTF checks it over HTTPS
        data={"username": "sec_admin", "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 302
    cookie = _session_cookie(r)
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=lax" in attrs
    assert ("secure" in attrs) == base_url.startswith("https"), cookie
    with client.session_transaction(base_url=base_url) as s:
        assert "planted" not in s, "the pre-login session survived the login"
        assert s.get("csrf_token") != before_token
        assert s.get("_user_id")


def test_failed_login_is_generic(app: Flask) -> None:
    """Wrong password and unknown user: the same status and message."""
    pages = []
    for user, password in (
        ("sec_admin", "wrong"),
        ("nobody-here", "wrong"),
        ("nobody-here", PASSWORD),
    ):
        client = app.test_client()
        r = client.post(
            "/login", data={"username": user, "password": password, "csrf_token": _token(client)}
        )
        body = r.get_data(as_text=True)
        pages.append((r.status_code, "Invalid username or password." in body))
        assert "unknown user" not in body.lower() and "wrong password" not in body.lower()
    assert len(set(pages)) == 1 and pages[0] == (401, True), pages


# --------------------------------------------------------------------------- headers


def _check_headers(r: TestResponse, where: str) -> None:
    h = r.headers
    assert h.get("X-Content-Type-Options") == "nosniff", where
    assert h.get("Referrer-Policy") in (
        "same-origin",
        "strict-origin-when-cross-origin",
        "no-referrer",
    ), where
    csp = h.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    script = directives.get("script-src", directives.get("default-src", ""))
    style = directives.get("style-src", directives.get("default-src", ""))
    assert "'self'" in script and "unsafe-inline" not in script and "*" not in script, where
    assert "'self'" in style and "unsafe-inline" not in style and "*" not in style, where
    assert directives.get("frame-ancestors") in (
        "frame-ancestors 'none'",
        "frame-ancestors 'self'",
    ), where


def test_security_headers_on_every_admin_page(app: Flask) -> None:
    """Every admin response (pages, errors, redirects) sends the security headers."""
    admin = _login(app, "sec_admin")
    anon = app.test_client()
    for rule in _admin_rules(app):
        for method in _methods(rule):
            url = _url(rule)
            data = {"csrf_token": _token(admin)} if method == "POST" else None
            for client in (admin, anon):
                r = client.open(url, method=method, data=data)
                _check_headers(r, f"{method} {url} -> {r.status_code}")
                _count("header check")
    for path in (
        "/admin/article/?page=x",
        "/admin/nope/",
        "/admin/article/999999/edit",
        "/login",
        "/",
    ):
        _check_headers(admin.get(path), path)


def test_report_probe_counts() -> None:
    """Print how many hostile requests were refused (runs last in this module)."""
    print("SECURITY probes:", dict(sorted(PROBES.items())))
    assert not PROBES or sum(PROBES.values()) > 0
