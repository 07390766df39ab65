"""Who may use the admin, and who is acting: the access rule, login redirects, the acting user."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import current_app, has_request_context, redirect, request, url_for
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from .extension import VersionedAdmin

Rule = Callable[[], bool]


class AccessDenied(Forbidden):
    """The access rule refused this request (shown as a 403 page in the admin layout)."""


def _login_user() -> Any | None:
    """Flask-Login's current user, or None when Flask-Login is not set up on this app."""
    if not has_request_context() or not hasattr(current_app, "login_manager"):
        return None
    try:
        from flask_login import current_user
    except ImportError:  # pragma: no cover - Flask-Login is optional
        return None
    return current_user._get_current_object()


def user_name(user: Any) -> str | None:
    """A user object (or name) as the text stored in changesets."""
    if user is None or isinstance(user, str):
        return user
    if not getattr(user, "is_authenticated", True):
        return None
    name = getattr(user, "username", None)
    if name:
        return str(name)
    get_id = getattr(user, "get_id", None)
    return str(get_id()) if callable(get_id) else str(user)


def default_user() -> str | None:
    """The acting user by default: Flask-Login's authenticated ``current_user``, else None."""
    return user_name(_login_user())


def is_anonymous() -> bool:
    """Whether nobody is logged in (True when the app has no Flask-Login)."""
    user = _login_user()
    return user is None or not getattr(user, "is_authenticated", False)


def safe_next(path: str) -> str:
    """A ``next`` value that can only point back into this site (a relative path)."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/"
    if "\\" in path:
        return "/"
    return path


def check_access(admin: VersionedAdmin) -> Response | None:
    """Refuse the request (403 page or login redirect) unless the access rule allows it."""
    config = current_app.config
    if admin.access is None:
        if config["VERSIONED_ADMIN_OPEN"]:
            return None
        raise AccessDenied(
            "This admin has no access rule, so it serves no one. Pass access=... to "
            "VersionedAdmin, or set VERSIONED_ADMIN_OPEN = True for local development."
        )
    if admin.access():
        return None
    login_endpoint = config.get("VERSIONED_ADMIN_LOGIN_ENDPOINT") or getattr(
        getattr(current_app, "login_manager", None), "login_view", None
    )
    if login_endpoint and is_anonymous():
        target = request.full_path if request.query_string else request.path
        return redirect(url_for(login_endpoint, next=safe_next(target)))
    raise AccessDenied("You are not allowed to use this admin.")


def allowed(rule: Rule | None) -> bool:
    """Whether an optional extra rule (delete, revert) allows the current request."""
    return True if rule is None else bool(rule())
