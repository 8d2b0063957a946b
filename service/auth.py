"""Bearer-token checks for management (admin) and, optionally, read endpoints.

Tokens are compared with ``hmac.compare_digest`` (constant time) and never
logged or echoed. With no ``ADMIN_TOKEN`` configured, management is disabled
(403) rather than open. With ``READ_TOKEN`` set, model listings and metrics
need it (or the admin token); health checks and predictions never do.
"""

from __future__ import annotations

import hmac

from flask import current_app, request

from .errors import Forbidden, Unauthorized

__all__ = ["require_admin", "require_reader"]


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _matches(token: str, secret) -> bool:
    return secret is not None and hmac.compare_digest(
        token.encode("utf-8", "surrogateescape"), secret.get_secret_value().encode("utf-8"))


def require_admin() -> None:
    """Raise unless the request carries the admin token (403 when none is configured)."""
    secret = current_app.config["SETTINGS"].admin_token
    if secret is None:
        raise Forbidden("management is disabled: the server has no ADMIN_TOKEN configured")
    token = _bearer()
    if token is None:
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <ADMIN_TOKEN>'")
    if not _matches(token, secret):
        raise Unauthorized("invalid token")


def require_reader() -> None:
    """Raise unless reading is open (no READ_TOKEN) or the request carries a read/admin token."""
    settings = current_app.config["SETTINGS"]
    if settings.read_token is None:
        return
    token = _bearer()
    if token is None:
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <READ_TOKEN>'")
    if not (_matches(token, settings.read_token) or _matches(token, settings.admin_token)):
        raise Unauthorized("invalid token")
