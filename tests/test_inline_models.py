"""Inline rows of a child model the admin does not register and the engine does not version.

An order owns its lines (``delete-orphan``); the lines are plain rows. The order's version still
lists them, the rows get the line model's generated fields, and a line has no history link.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from test_relations_ui import form_fields, page_text

from versioned_admin import Versioned, VersionedAdmin
from versioned_admin.versioning import latest_version


class Base(DeclarativeBase):
    """Models of this module only."""


class Order(Versioned, Base):
    """Owns its lines."""

    __tablename__ = "inl_order"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer: Mapped[str] = mapped_column(String(60))
    lines: Mapped[list[Line]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Line.id"
    )


class Line(Base):
    """A plain (unversioned, unregistered) child row."""

    __tablename__ = "inl_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("inl_order.id"))
    product: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[int] = mapped_column(default=1)
    price: Mapped[Decimal | None] = mapped_column(sa.Numeric(8, 2))
    order: Mapped[Order] = relationship(back_populates="lines")


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A sessionmaker on a fresh database with one order of two lines (written unversioned)."""
    engine = sa.create_engine(db_url)
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    with maker() as s:
        s.add(Order(customer="Ada", lines=[Line(product="Tea", quantity=2, price=Decimal("3.50")),
                                           Line(product="Cake")]))
        s.commit()
    yield maker
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def client(factory: sessionmaker[Session]) -> FlaskClient:
    """An open admin (plain sessionmaker) with only Order registered."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="t", TESTING=True, WTF_CSRF_ENABLED=False,
                      VERSIONED_ADMIN_OPEN=True)
    admin = VersionedAdmin(session=factory)
    admin.register(Order, form_columns=["customer", "lines"])
    admin.init_app(app)
    return app.test_client()


def fields(client: FlaskClient) -> dict[str, Any]:
    """The order's edit form as a browser submits it."""
    page = client.get("/admin/order/1/edit").get_data(as_text=True)
    return {k: v for k, v in form_fields(page).items() if "__index__" not in k}


def lines(factory: sessionmaker[Session]) -> list[tuple[str, int, Decimal | None]]:
    """(product, quantity, price) of order 1's lines."""
    with factory() as s:
        order = s.get(Order, 1)
        assert order is not None
        return [(line.product, line.quantity, line.price) for line in order.lines]


def test_rows_use_the_line_models_fields(client: FlaskClient) -> None:
    page = client.get("/admin/order/1/edit").get_data(as_text=True)
    data = fields(client)
    assert data["rel-lines-0-product"] == "Tea" and data["rel-lines-0-quantity"] == "2"
    assert data["rel-lines-0-price"] == "3.50"
    assert data["rel-lines-1-product"] == "Cake"
    assert data["rel-lines-0-version"] == ""  # lines are not versioned: no version check
    assert "rel-lines-0-order" not in data and "rel-lines-0-order_id" not in data
    assert not re.search(r'href="[^"]*/history"[^>]*>history<', page)


def test_add_edit_remove_lines(client: FlaskClient, factory: sessionmaker[Session]) -> None:
    data = fields(client)
    data["rel-lines-0-quantity"] = "3"
    data["rel-lines-1-del"] = ["1"]
    data["rel-lines-new-0-product"] = "Scone"
    data["rel-lines-new-0-price"] = "2.25"
    response = client.post("/admin/order/1/edit", data=data)
    assert response.status_code == 302, page_text(response)[:1500]
    assert lines(factory) == [("Tea", 3, Decimal("3.50")), ("Scone", 1, Decimal("2.25"))]
    with factory() as s:
        version = latest_version(s, Order, (1,))
        # the order predates the admin (no version yet): this is its first, listing the lines
        assert version is not None and version.number == 1 and version.changed == ("lines",)
        assert len(version.state["lines"]) == 2


def test_a_bad_quantity_is_refused_with_the_typing_kept(
    client: FlaskClient, factory: sessionmaker[Session]
) -> None:
    data = fields(client)
    data["rel-lines-0-quantity"] = "many"
    data["rel-lines-new-0-product"] = "Scone"
    data["rel-lines-new-0-quantity"] = "99999999999999999999"
    response = client.post("/admin/order/1/edit", data=data)
    assert response.status_code == 422
    text = page_text(response)
    assert "Not a valid integer value." in text
    kept = form_fields(response.get_data(as_text=True))
    assert kept["rel-lines-0-quantity"] == "many"
    assert kept["rel-lines-new-0-product"] == "Scone"
    assert lines(factory) == [("Tea", 2, Decimal("3.50")), ("Cake", 1, None)]
    with factory() as s:
        assert latest_version(s, Order, (1,)) is None
