"""Who may use the admin: the access rule, OPEN mode, login redirects, delete rules, acting user."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from flask_login import LoginManager, UserMixin, current_user, login_user

from tests.admin_fixtures import Article, csrf_token, db, drop, make_app, seed
from versioned_admin import versions
from versioned_admin.admin.access import safe_next


class User(UserMixin):
    """A user known by name; "boss" may use the admin, everyone else may not."""

    def __init__(self, name: str) -> None:
        self.id = name
        self.username = name


def with_login(app: Flask, *, login_view: str | None = "login") -> None:
    """Add Flask-Login and a /login?user=NAME route to a test app."""
    manager = LoginManager(app)
    manager.login_view = login_view
    manager.user_loader(User)

    @app.route("/login")
    def login() -> str:
        name = request.args.get("user")
        if name:
            login_user(User(name))
        return f"login page next={request.args.get('next', '')}"


@pytest.fixture
def locked(db_url: str) -> Iterator[Flask]:
    """The admin with Flask-Login, access for "boss" only, deleting for nobody."""
    app = make_app(
        db_url,
        access=lambda: current_user.is_authenticated and current_user.username == "boss",
        can_delete=lambda: False,
        current_user=None,
    )
    with_login(app)
    yield app
    drop(app)


def admin_urls(app: Flask) -> list[tuple[str, str]]:
    """(method, url) for every admin route, placeholders filled in."""
    result = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("versioned_admin.") or rule.endpoint.endswith(".static"):
            continue
        url = rule.rule.replace("<model>", "article").replace("<pk>", "1")
        url = re.sub(r"<path:\w+>", "x/y", url)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            result.append((method, url))
    return result


def test_no_access_rule_refuses_everyone_and_warns(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="versioned_admin"):
        app = make_app(db_url, access=None)
    try:
        assert app.config["VERSIONED_ADMIN_OPEN"] is False
        assert any("will refuse every request" in r.message for r in caplog.records)
        seed(app)
        client = app.test_client()
        for method, url in admin_urls(app):
            response = client.open(url, method=method)
            assert response.status_code == 403, url
            body = html.unescape(response.get_data(as_text=True))
            assert "no access rule" in body and "VERSIONED_ADMIN_OPEN" in body
            assert "Articles" not in body  # refused users do not see the model list
        css = client.get("/admin/static/admin.css")
        assert css.status_code == 200
        css.close()
        with app.app_context():
            assert db.session.get(Article, 1) is not None
    finally:
        drop(app)


def test_open_mode_serves_everyone_with_a_warning(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="versioned_admin"):
        app = make_app(db_url)  # no access rule: the fixtures set VERSIONED_ADMIN_OPEN
    try:
        assert app.config["VERSIONED_ADMIN_OPEN"] is True
        assert any("OPEN to everyone" in r.message for r in caplog.records)
        assert app.test_client().get("/admin/").status_code == 200
    finally:
        drop(app)


def test_anonymous_is_sent_to_login_with_a_relative_next(locked: Flask) -> None:
    client = locked.test_client()
    response = client.get("/admin/article/?q=a&page=2")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    assert location == "/login?next=/admin/article/?q%3Da%26page%3D2"
    assert "http" not in location.split("next=")[1]


def test_every_admin_route_refuses_anonymous_and_unauthorised_users(locked: Flask) -> None:
    seed(locked)
    anonymous = locked.test_client()
    intruder = locked.test_client()
    intruder.get("/login?user=mallory")
    for method, url in admin_urls(locked):
        assert anonymous.open(url, method=method).status_code == 302, url
        response = intruder.open(url, method=method)
        assert response.status_code == 403, url
        assert "You are not allowed to use this admin." in response.get_data(as_text=True)
    with locked.app_context():
        assert len(versions(db.session, Article, 1)) == 1  # nothing was changed


def test_config_login_endpoint_wins_over_flask_login(db_url: str) -> None:
    app = make_app(db_url, access=lambda: False)
    app.config["VERSIONED_ADMIN_LOGIN_ENDPOINT"] = "sign_in"
    app.add_url_rule("/sign-in", "sign_in", lambda: "sign in")
    try:
        response = app.test_client().get("/admin/")
        assert response.status_code == 302
        assert response.headers["Location"] == "/sign-in?next=/admin/"
    finally:
        drop(app)


def test_without_login_endpoint_a_refusal_is_a_403(db_url: str) -> None:
    app = make_app(db_url, access=lambda: False)
    try:
        response = app.test_client().get("/admin/")
        assert response.status_code == 403
    finally:
        drop(app)


def test_allowed_user_is_recorded_as_the_acting_user(locked: Flask) -> None:
    ids = seed(locked)
    client = locked.test_client()
    client.get("/login?user=boss")
    body = client.get("/admin/").get_data(as_text=True)
    assert 'class="va-user-name"' in body and ">boss<" in body
    url = f"/admin/article/{ids['articles'][0]}/edit"
    page = client.get(url).get_data(as_text=True)
    data = {
        "csrf_token": csrf_token(client, url),
        "base_version": re.search(r'name="base_version" type="hidden" value="(\d+)"', page)[1],
        "title": "By boss", "status": "DRAFT", "views": "1", "author": str(ids["ann"]),
    }
    assert client.post(url, data=data).status_code == 302
    with locked.app_context():
        assert versions(db.session, Article, ids["articles"][0])[0].changeset.user == "boss"


def test_can_delete_rule_hides_buttons_and_refuses_the_post(locked: Flask) -> None:
    ids = seed(locked)
    client = locked.test_client()
    client.get("/login?user=boss")
    art = ids["articles"][0]
    for url in ["/admin/article/", f"/admin/article/{art}/edit"]:
        body = client.get(url).get_data(as_text=True)
        assert f"/admin/article/{art}/delete" not in body
    assert client.get(f"/admin/article/{art}/delete").status_code == 403
    token = csrf_token(client, f"/admin/article/{art}/edit")
    response = client.post(f"/admin/article/{art}/delete", data={"csrf_token": token})
    assert response.status_code == 403
    with locked.app_context():
        assert db.session.get(Article, art) is not None


def test_model_view_can_create_and_can_edit(db_url: str) -> None:
    app = make_app(db_url, register=False)
    app.extensions["test_admin"].register(Article, can_create=False, can_edit=False,
                                          can_delete=False)
    try:
        seed(app)
        client = app.test_client()
        body = client.get("/admin/article/").get_data(as_text=True)
        assert "/admin/article/new" not in body and "/1/delete" not in body and ">View<" in body
        assert client.get("/admin/article/new").status_code == 403
        page = client.get("/admin/article/1/edit")
        assert page.status_code == 200
        assert "You can view this record but not change it." in page.get_data(as_text=True)
        token = csrf_token(client, "/admin/article/1/edit")
        response = client.post("/admin/article/1/edit", data={"csrf_token": token, "title": "x"})
        assert response.status_code == 403
        assert client.get("/admin/article/1/delete").status_code == 403
    finally:
        drop(app)


def test_can_revert_rule_is_exposed_to_pages(db_url: str) -> None:
    from versioned_admin.admin.context import can

    flag = {"revert": False}
    app = make_app(db_url, can_revert=lambda: flag["revert"])
    try:
        with app.test_request_context("/admin/"):
            request.blueprint  # noqa: B018 - the request is routed to the admin's blueprint
            assert can("revert") is False and can("delete") is True
            flag["revert"] = True
            assert can("revert") is True
    finally:
        drop(app)


def test_default_acting_user_comes_from_flask_login(db_url: str) -> None:
    from versioned_admin import VersionedAdmin

    app = make_app(db_url, current_user=None)
    with_login(app)
    admin: VersionedAdmin = app.extensions["test_admin"]
    try:
        client = app.test_client()
        client.get("/login?user=hana")
        with client:
            client.get("/admin/")
            assert admin.acting_user() == "hana"
        assert admin.acting_user() is None  # outside a request
        with app.test_request_context("/admin/"):
            assert admin.acting_user() is None  # anonymous
    finally:
        drop(app)


def test_acting_user_may_be_a_user_object(db_url: str) -> None:
    class Person:
        is_authenticated = True

        def get_id(self) -> str:
            return "42"

    app = make_app(db_url, current_user=Person)
    try:
        with app.test_request_context("/admin/"):
            assert app.extensions["test_admin"].acting_user() == "42"
    finally:
        drop(app)


@pytest.mark.parametrize(
    "target,expected",
    [
        ("/admin/x?y=1", "/admin/x?y=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_safe_next_only_allows_relative_paths(target: str, expected: Any) -> None:
    assert safe_next(target) == expected
