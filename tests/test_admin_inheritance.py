"""The admin over a versioned inheritance hierarchy (single- and joined-table): the base and
each subclass registered, list, create, edit (base and subclass columns), history, diff,
revert, delete and restore."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from admin_fixtures import base_version, csrf_token
from flask import Flask
from flask.testing import FlaskClient
from inheritance_models import HIERARCHIES, Hierarchy, engineer_state, live_row
from sqlalchemy.orm import Session, sessionmaker

from versioned_admin import VersionedAdmin
from versioned_admin.versioning import Operation, versions


@pytest.fixture(params=["single", "joined"])
def h(request: pytest.FixtureRequest) -> Hierarchy:
    return HIERARCHIES[request.param]


@pytest.fixture
def factory(db_url: str, h: Hierarchy) -> Iterator[sessionmaker[Session]]:
    engine = sa.create_engine(db_url)
    h.metadata.create_all(engine)
    yield sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def client(factory: sessionmaker[Session], h: Hierarchy) -> FlaskClient:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True, VERSIONED_ADMIN_OPEN=True)
    admin = VersionedAdmin(app, session=factory, current_user=lambda: "robot")
    admin.register(h.Employee, slug="employee")
    admin.register(h.Engineer, slug="engineer")
    admin.register(h.Manager, slug="manager")
    return app.test_client()


def _text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def _fields(html: str) -> list[str]:
    return [n for n in re.findall(r'<(?:input|select|textarea)[^>]* name="([a-z_]+)"', html)
            if n not in ("csrf_token", "base_version", "change_reason")]


def _seed(factory: sessionmaker[Session], h: Hierarchy) -> None:
    """Bob (an employee), Ada (an engineer) and Grace (a manager), versioned (the admin
    enabled versioning on the session factory)."""
    with factory() as s:
        s.add_all([h.Employee(id=1, name="Bob"),
                   h.Engineer(id=2, name="Ada", primary_language="Python"),
                   h.Manager(id=3, name="Grace", level=3)])
        s.commit()


def test_lists_are_polymorphic(client: FlaskClient, factory: sessionmaker[Session],
                               h: Hierarchy) -> None:
    _seed(factory, h)
    everyone = _text(client.get("/admin/employee/"))
    assert all(name in everyone for name in ("Bob", "Ada", "Grace"))
    engineers = _text(client.get("/admin/engineer/"))
    assert "Ada" in engineers and "Python" in engineers
    assert "Bob" not in engineers and "Grace" not in engineers
    managers = _text(client.get("/admin/manager/"))
    assert "Grace" in managers and "Ada" not in managers


def test_create_a_subclass_record(client: FlaskClient, factory: sessionmaker[Session],
                                  h: Hierarchy) -> None:
    page = _text(client.get("/admin/engineer/new"))
    # The key is the base's (autoincremented) and the class sets the discriminator.
    assert _fields(page) == ["name", "primary_language"]
    data = {"csrf_token": csrf_token(client, "/admin/engineer/new"), "name": "Ada",
            "primary_language": "Python"}
    assert client.post("/admin/engineer/new", data=data).status_code == 302
    with factory() as s:
        (ada,) = s.scalars(sa.select(h.Employee)).all()
        assert type(ada) is h.Engineer
        (v,) = versions(s, h.Employee, ada.id)
        assert v.model is h.Engineer and v.state == engineer_state(ada.id, "Ada", "Python")
        assert v.changeset.user == "robot"


def test_edit_base_and_subclass_columns(client: FlaskClient, factory: sessionmaker[Session],
                                        h: Hierarchy) -> None:
    _seed(factory, h)
    url = "/admin/engineer/2/edit"
    page = _text(client.get(url))
    assert _fields(page) == ["name", "primary_language"]
    assert 'value="Ada"' in page and 'value="Python"' in page
    data = {"csrf_token": csrf_token(client, url), "base_version": base_version(page),
            "name": "Ada L.", "primary_language": "Rust"}
    assert client.post(url, data=data).status_code == 302
    with factory() as s:
        v = versions(s, h.Engineer, 2)[0]
        assert (v.number, v.changed) == (2, ("name", "primary_language"))
        assert live_row(s, h, 2) == ("Ada L.", "Rust")
    # The base's view edits a subclass record's base columns.
    url = "/admin/employee/2/edit"
    page = _text(client.get(url))
    assert _fields(page) == ["name"]
    data = {"csrf_token": csrf_token(client, url), "base_version": base_version(page),
            "name": "Ada"}
    assert client.post(url, data=data).status_code == 302
    with factory() as s:
        v = versions(s, h.Employee, 2)[0]
        assert (v.number, v.changed) == (3, ("name",))
        assert v.state == engineer_state(2, "Ada", "Rust")


def test_history_diff_and_revert(client: FlaskClient, factory: sessionmaker[Session],
                                 h: Hierarchy) -> None:
    _seed(factory, h)
    with factory() as s:
        ada = s.get(h.Engineer, 2)
        ada.primary_language = "Rust"
        s.commit()
    for slug in ("engineer", "employee"):
        timeline = _text(client.get(f"/admin/{slug}/2/history"))
        assert [int(n) for n in re.findall(r'<tr id="v(\d+)"', timeline)] == [2, 1]
        diff = _text(client.get(f"/admin/{slug}/2/diff?from=1&to=2"))
        assert "Primary language" in diff and "Python" in diff and "Rust" in diff
    assert client.get("/admin/manager/2/history").status_code == 404
    url = "/admin/engineer/2/revert/1"
    page = _text(client.get(url))
    assert "Rust" in page and "Python" in page
    data = {"csrf_token": csrf_token(client, url), "seen_version": "2"}
    assert client.post(url, data=data).status_code == 302
    with factory() as s:
        v = versions(s, h.Engineer, 2)[0]
        assert (v.number, v.reverted_from, v.changed) == (3, 1, ("primary_language",))
        assert live_row(s, h, 2) == ("Ada", "Python")


def test_delete_and_restore(client: FlaskClient, factory: sessionmaker[Session],
                            h: Hierarchy) -> None:
    _seed(factory, h)
    url = "/admin/engineer/2/delete"
    assert client.post(url, data={"csrf_token": csrf_token(client, url)}).status_code == 302
    with factory() as s:
        assert live_row(s, h, 2) is None
        assert versions(s, h.Engineer, 2)[0].operation is Operation.DELETE
    assert "Ada" in _text(client.get("/admin/engineer/deleted"))
    assert "Ada" in _text(client.get("/admin/employee/deleted"))
    assert "Ada" not in _text(client.get("/admin/manager/deleted"))
    token = csrf_token(client, "/admin/employee/deleted")
    assert client.post("/admin/employee/2/restore", data={"csrf_token": token}).status_code == 302
    with factory() as s:
        back = s.get(h.Employee, 2)
        assert type(back) is h.Engineer
        assert live_row(s, h, 2) == ("Ada", "Python")
        v = versions(s, h.Engineer, 2)[0]
        assert (v.number, v.operation, v.reverted_from) == (3, Operation.INSERT, 1)


def test_only_the_base_registered_links_subclass_changes(
    factory: sessionmaker[Session], h: Hierarchy
) -> None:
    """Activity and the index link an Engineer's change to the Employee pages when only the
    base is registered."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True, VERSIONED_ADMIN_OPEN=True)
    admin = VersionedAdmin(app, session=factory, current_user=lambda: "robot")
    admin.register(h.Employee, slug="employee")
    client = app.test_client()
    _seed(factory, h)
    for url in ("/admin/activity", "/admin/"):
        html = _text(client.get(url))
        assert 'href="/admin/employee/2/history"' in html or 'href="/admin/employee/2/' in html
