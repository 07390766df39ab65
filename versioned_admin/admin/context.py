"""Request-time helpers shared by every admin view: the admin of this request, rendering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import current_app, render_template, request, url_for
from werkzeug.exceptions import NotFound

from .access import allowed
from .forms import describe

if TYPE_CHECKING:
    from .extension import VersionedAdmin
    from .registry import ModelView

EXTENSION_KEY = "versioned_admin"


def current_admin() -> VersionedAdmin:
    """The VersionedAdmin serving the current request (found by the blueprint's name)."""
    return current_app.extensions[EXTENSION_KEY][request.blueprint]


def admin_url(name: str, **values: Any) -> str:
    """``url_for`` an endpoint of the current admin's blueprint (``"list_view"``, ...)."""
    return url_for(f"{request.blueprint}.{name}", **values)


def has_view(name: str) -> bool:
    """Whether the current admin's blueprint has an endpoint (e.g. ``history_view``)."""
    return f"{request.blueprint}.{name}" in current_app.view_functions


def get_view(slug: str) -> ModelView:
    """The registered view for a slug, or a 404 page."""
    view = current_admin().views.get(slug)
    if view is None:
        raise NotFound(f"There is no model called {slug[:80]!r} in this admin.")
    return view


def can(action: str, view: ModelView | None = None) -> bool:
    """Whether the current user may ``create``, ``edit``, ``delete`` or ``revert`` (on a view)."""
    admin = current_admin()
    if action == "delete":
        return allowed(admin.can_delete) and (view is None or view.can_delete)
    if action == "revert":
        return allowed(admin.can_revert) and (view is None or view.can_edit)
    if action == "create":
        return view is None or view.can_create
    if action == "edit":
        return view is None or view.can_edit
    raise ValueError(f"unknown action {action!r}")


def render_page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """Render an admin page with the shared context (layout, navigation, helpers)."""
    admin = current_admin()
    html = render_template(
        template,
        admin=admin,
        admin_title=admin.title(),
        layout_template=admin.layout_template,
        nav_views=list(admin.views.values()),
        admin_url=admin_url,
        has_view=has_view,
        can=can,
        static_url=lambda filename: admin_url("static", filename=filename),
        acting_user=admin.acting_user(),
        describe=describe,
        **context,
    )
    return html, status
