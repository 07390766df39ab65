"""Error pages: every failure inside the admin becomes a friendly page, never a traceback."""

from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy.exc import DataError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .context import current_admin, render_page

logger = logging.getLogger("versioned_admin")

TITLES = {
    400: "Bad request",
    403: "Access denied",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    500: "Something went wrong",
    503: "Database unavailable",
}


def error_page(status: int, message: str) -> tuple[str, int]:
    """Render the error template in the admin layout (plain text if even that fails)."""
    current_admin().rollback()
    try:
        return render_page(
            current_admin().error_template,
            status=status,
            status_code=status,
            error_title=TITLES.get(status, "Error"),
            message=message,
            show_nav=status not in (401, 403),
        )
    except Exception:  # the page itself failed (a broken template or database): stay calm
        logger.exception("versioned_admin: rendering the error page failed")
        return f"{status} {TITLES.get(status, 'Error')}: {message}", status


def handle_http(exc: HTTPException) -> Response | HTTPException:
    """4xx aborts: the admin's error page with the abort's description (and its headers)."""
    if exc.code is None or exc.code < 400:
        return exc
    body, status = error_page(exc.code, exc.description or TITLES.get(exc.code, "Error"))
    response = Response(body, status, mimetype="text/html")
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_operational(exc: OperationalError) -> tuple[str, int, dict[str, str]]:
    """The database cannot be reached: 503, with a hint to retry shortly."""
    logger.error("versioned_admin: database unavailable: %s", exc)
    body, status = error_page(
        503, "The database is not available right now. Nothing was saved. Please try again "
        "shortly."
    )
    return body, status, {"Retry-After": "5"}


def handle_data(exc: DataError) -> tuple[str, int]:
    """The database refused a value from the request: 400."""
    logger.warning("versioned_admin: database refused a value: %s", exc)
    return error_page(400, "The database refused a value in this request.")


def handle_unexpected(exc: Exception) -> tuple[str, int] | Response | HTTPException:
    """Anything else: log it with its traceback, show a 500 page without one."""
    if isinstance(exc, HTTPException):
        return handle_http(exc)
    logger.error("versioned_admin: unexpected error", exc_info=exc)
    return error_page(500, "An unexpected error occurred. It has been logged.")


def register_error_handlers(blueprint: Blueprint) -> None:
    """Install the handlers on the admin's blueprint (they cover only admin pages)."""
    blueprint.register_error_handler(HTTPException, handle_http)
    blueprint.register_error_handler(OperationalError, handle_operational)
    blueprint.register_error_handler(DataError, handle_data)
    blueprint.register_error_handler(SQLAlchemyError, handle_unexpected)
    blueprint.register_error_handler(Exception, handle_unexpected)
