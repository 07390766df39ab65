"""Embedding the admin into apps built from scratch: the README's few lines, two admins in one
app, and plain SQLAlchemy sessions without Flask-SQLAlchemy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import Flask, abort, request, session
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    relationship,
    scoped_session,
    sessionmaker,
)

from versioned_admin import Versioned, VersionedAdmin, versions

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
BASE = re.compile(r'name="base_version" type="hidden" value="(\d*)"')


def token(client: FlaskClient, url: str) -> tuple[str, str]:
    """The CSRF token and base version (empty on create forms) of the form at ``url``."""
    page = client.get(url).get_data(as_text=True)
    match = TOKEN.search(page)
    assert match, page[:500]
    base = BASE.search(page)
    return match.group(1), base.group(1) if base else ""


# -- an existing Flask-SQLAlchemy app gets the admin ------------------------------------------


def build_shop(db_url: str) -> tuple[Flask, SQLAlchemy, type, type]:
    """A small shop app as a host would have it: its own models, its own login; then the admin."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Supplier(Versioned, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "shop_supplier"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(80), unique=True)

        def __str__(self) -> str:
            return self.name

    class Product(Versioned, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "shop_product"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(80))
        description: Mapped[str | None] = mapped_column(Text)
        price: Mapped[Decimal] = mapped_column(sa.Numeric(8, 2))
        in_stock: Mapped[bool] = mapped_column(default=True)
        supplier_id: Mapped[int] = mapped_column(ForeignKey("shop_supplier.id"))
        supplier: Mapped[Supplier] = relationship()

    app = Flask(__name__)
    app.config.update(SECRET_KEY="shop-secret", SQLALCHEMY_DATABASE_URI=db_url,
                      VERSIONED_ADMIN_LOGIN_ENDPOINT="sign_in")
    db.init_app(app)

    @app.route("/")
    def home() -> str:
        return "shop front"

    @app.route("/sign-in", methods=["GET", "POST"])
    def sign_in() -> str:
        if request.method == "POST":
            if request.form.get("password") != "staff-only":
                abort(401)
            session["staff"] = request.form["name"]
            return "welcome"
        return f"sign in (next={request.args.get('next', '')})"

    # The README's lines:
    admin = VersionedAdmin(
        db=db,
        url_prefix="/backoffice",
        name="Shop back office",
        access=lambda: "staff" in session,
        current_user=lambda: session.get("staff"),
    )
    admin.register(Supplier)
    admin.register(Product, list_columns=["name", "price", "in_stock", "supplier"],
                   search_columns=["name", "description"], filters=["in_stock", "supplier"])
    admin.init_app(app)

    with app.app_context():
        db.create_all()
    return app, db, Supplier, Product


@pytest.fixture
def shop(db_url: str) -> Iterator[tuple[Flask, SQLAlchemy, type, type]]:
    """The shop app with its admin on /backoffice."""
    built = build_shop(db_url)
    yield built
    app, db, _, _ = built
    with app.app_context():
        db.session.remove()
        db.drop_all()
        for engine in db.engines.values():
            engine.dispose()


def test_embedded_admin_end_to_end(shop: tuple[Flask, SQLAlchemy, type, type]) -> None:
    app, db, supplier_model, product_model = shop
    client = app.test_client()
    assert client.get("/").get_data(as_text=True) == "shop front"  # the host is untouched
    assert "versioned_admin" in app.extensions
    assert app.extensions["versioned_admin"]["versioned_admin"] is not None

    # anonymous: sent to the host's own sign-in page, and nothing is served
    response = client.get("/backoffice/product/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/backoffice/product/"
    assert client.get("/admin/").status_code == 404  # the default prefix is not used

    signed_in = client.post("/sign-in", data={"name": "ivy", "password": "staff-only"})
    assert signed_in.status_code == 200
    index = client.get("/backoffice/")
    assert index.status_code == 200
    body = index.get_data(as_text=True)
    assert "Shop back office" in body and 'href="/backoffice/product/"' in body

    # create a supplier, then a product that points at it
    csrf, _ = token(client, "/backoffice/supplier/new")
    response = client.post("/backoffice/supplier/new", data={"csrf_token": csrf, "name": "Acme"})
    assert response.status_code == 302 and response.headers["Location"] == "/backoffice/supplier/"
    with app.app_context():
        acme = db.session.scalars(sa.select(supplier_model)).one()
        acme_id = acme.id
    csrf, _ = token(client, "/backoffice/product/new")
    data = {"csrf_token": csrf, "name": "Anvil", "description": "Heavy.", "price": "99.50",
            "in_stock": "y", "supplier": str(acme_id), "change_reason": "new line"}
    assert client.post("/backoffice/product/new", data=data).status_code == 302

    listing = client.get("/backoffice/product/?q=anvil").get_data(as_text=True)
    assert "Anvil" in listing and "99.50" in listing and "Acme" in listing
    assert "Added Anvil." in listing

    # edit with a validation error first, then properly
    with app.app_context():
        product_id = db.session.scalars(sa.select(product_model)).one().id
    url = f"/backoffice/product/{product_id}/edit"
    csrf, base = token(client, url)
    data.update(csrf_token=csrf, base_version=base, price="not money", change_reason="")
    response = client.post(url, data=data)
    assert response.status_code == 422
    assert "Not a valid decimal value" in response.get_data(as_text=True)
    data["price"] = "89.00"
    data["change_reason"] = "sale"
    assert client.post(url, data=data).status_code == 302

    # delete with the confirmation step
    delete_url = f"/backoffice/product/{product_id}/delete"
    assert "Delete Anvil?" in client.get(delete_url).get_data(as_text=True)
    csrf, _ = token(client, delete_url)
    assert client.post(delete_url, data={"csrf_token": csrf}).status_code == 302
    assert "There are no products yet." in client.get("/backoffice/product/").get_data(as_text=True)

    with app.app_context():
        history = versions(db.session, product_model, product_id)
    assert [v.operation.value for v in history] == ["delete", "update", "insert"]
    assert [v.changeset.user for v in history] == ["ivy", "ivy", "ivy"]
    assert history[1].changeset.reason == "sale" and history[2].changeset.reason == "new line"
    assert history[1].state["price"] == Decimal("89.00")


def test_embedded_admin_static_and_error_pages_use_the_prefix(
    shop: tuple[Flask, SQLAlchemy, type, type],
) -> None:
    app, _, _, _ = shop
    client = app.test_client()
    client.post("/sign-in", data={"name": "ivy", "password": "staff-only"})
    response = client.get("/backoffice/nothing/")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "/backoffice/static/admin.css" in body and 'href="/backoffice/"' in body
    css = client.get("/backoffice/static/admin.css")
    assert css.status_code == 200
    css.close()


# -- two admins in one app ---------------------------------------------------------------------


def test_two_admins_with_different_prefixes(db_url: str) -> None:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Page(Versioned, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "two_page"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(50))

    class Invoice(Versioned, db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "two_invoice"
        id: Mapped[int] = mapped_column(primary_key=True)
        number: Mapped[str] = mapped_column(String(20))

    app = Flask(__name__)
    app.config.update(SECRET_KEY="x", SQLALCHEMY_DATABASE_URI=db_url)
    db.init_app(app)
    # Each admin records its own users, though both share db.session's factory.
    editors = VersionedAdmin(db=db, access=lambda: True, name="Content",
                             current_user=lambda: "ann (content)")
    editors.register(Page)
    finance = VersionedAdmin(db=db, url_prefix="/finance", endpoint="finance_admin",
                             access=lambda: request.headers.get("X-Role") == "finance",
                             name="Finance", current_user=lambda: "bob (finance)")
    finance.register(Invoice)
    editors.init_app(app)
    finance.init_app(app)
    with app.app_context():
        db.create_all()
    try:
        assert set(app.extensions["versioned_admin"]) == {"versioned_admin", "finance_admin"}
        client = app.test_client()
        content = client.get("/admin/").get_data(as_text=True)
        assert "Content" in content and "/admin/page/" in content and "Invoice" not in content
        assert client.get("/admin/invoice/").status_code == 404
        assert client.get("/finance/").status_code == 403  # its own access rule
        money = client.get("/finance/", headers={"X-Role": "finance"}).get_data(as_text=True)
        assert "Finance" in money and "/finance/invoice/" in money and "/admin/" not in money

        csrf, _ = token(client, "/admin/page/new")
        assert client.post("/admin/page/new", data={"csrf_token": csrf, "title": "Hi"}
                           ).headers["Location"] == "/admin/page/"
        page = client.get("/finance/invoice/new", headers={"X-Role": "finance"})
        csrf = TOKEN.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        response = client.post("/finance/invoice/new", headers={"X-Role": "finance"},
                               data={"csrf_token": csrf, "number": "F-1"})
        assert response.headers["Location"] == "/finance/invoice/"
        csrf, _ = token(client, "/admin/page/new")
        client.post("/admin/page/new", data={"csrf_token": csrf, "title": "Again"})
        with app.app_context():
            assert db.session.scalars(sa.select(Invoice.number)).all() == ["F-1"]
            assert sorted(db.session.scalars(sa.select(Page.title))) == ["Again", "Hi"]
            users = {v.state.get("title", v.state.get("number")): v.changeset.user
                     for model in (Page, Invoice) for pk in (1, 2)
                     for v in versions(db.session, model, pk)}
            assert users == {"Hi": "ann (content)", "Again": "ann (content)",
                             "F-1": "bob (finance)"}
            db.session.add(Page(title="outside"))  # not through an admin: no request user
            db.session.commit()
            assert versions(db.session, Page, 3)[0].changeset.user is None

        with pytest.raises(RuntimeError, match="already on this app"):
            VersionedAdmin(db=db, url_prefix="/other", access=lambda: True).init_app(app)
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            for engine in db.engines.values():
                engine.dispose()


# -- plain SQLAlchemy: a sessionmaker or a scoped_session ---------------------------------------


class PlainBase(DeclarativeBase):
    """Models of an app that does not use Flask-SQLAlchemy."""


class Ticket(Versioned, PlainBase):
    """A support ticket."""

    __tablename__ = "plain_ticket"
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(100))
    closed: Mapped[bool] = mapped_column(default=False)


@pytest.mark.parametrize("kind", ["sessionmaker", "scoped_session"])
def test_plain_sqlalchemy_session(db_url: str, kind: str) -> None:
    engine = sa.create_engine(db_url)
    PlainBase.metadata.create_all(engine)
    factory = sessionmaker(engine)
    source = factory if kind == "sessionmaker" else scoped_session(sessionmaker(engine))
    app = Flask(__name__)
    app.config.update(SECRET_KEY="plain", VERSIONED_ADMIN_OPEN=True)
    admin = VersionedAdmin(app, session=source, current_user=lambda: "robot")
    admin.register(Ticket, label="Support tickets")
    try:
        client = app.test_client()
        assert "Support tickets" in client.get("/admin/").get_data(as_text=True)
        csrf, _ = token(client, "/admin/ticket/new")
        data = {"csrf_token": csrf, "subject": "Printer on fire"}
        assert client.post("/admin/ticket/new", data=data).status_code == 302
        with factory() as s:
            ticket_id = s.scalars(sa.select(Ticket.id)).one()
        url = f"/admin/ticket/{ticket_id}/edit"
        csrf, base = token(client, url)
        data = {"csrf_token": csrf, "base_version": base, "subject": "Printer on fire",
                "closed": "y", "change_reason": "extinguished"}
        assert client.post(url, data=data).status_code == 302
        assert "Yes" in client.get("/admin/ticket/").get_data(as_text=True)
        assert engine.pool.checkedout() == 0  # the admin closed its sessions
        with factory() as s:
            history = versions(s, Ticket, ticket_id)
        assert [v.number for v in history] == [2, 1]
        assert history[0].changeset.user == "robot"
        assert history[0].changeset.reason == "extinguished"
        assert history[0].state["closed"] is True
    finally:
        if isinstance(source, scoped_session):
            source.remove()
        PlainBase.metadata.drop_all(engine)
        engine.dispose()


def test_admin_needs_a_database_handle() -> None:
    with pytest.raises(TypeError, match="db= .* or session="):
        VersionedAdmin()
    with pytest.raises(TypeError, match="sessionmaker or a scoped_session"):
        VersionedAdmin(session=object())  # type: ignore[arg-type]


def test_register_validates_options() -> None:
    admin = VersionedAdmin(session=sessionmaker())
    with pytest.raises(ValueError, match="no attribute"):
        admin.register(Ticket, list_columns=["subject", "nope"])
    with pytest.raises(TypeError, match="list of attribute names"):
        admin.register(Ticket, search_columns="subject")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid slug"):
        admin.register(Ticket, slug="static")
    with pytest.raises(TypeError, match="not a mapped"):
        admin.register(int)
    view = admin.register(Ticket)
    assert view.slug == "ticket" and view.label == "Tickets"
    with pytest.raises(ValueError, match="already registered"):
        admin.register(Ticket)
