"""Access to pages: anonymous visitors go to the login page, non-staff get 403."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request

from voicewatch.auth import Principal
from voicewatch.web.deps import current_principal
from voicewatch.web.errors import ApiError


class LoginRequired(Exception):
    """Raised by ``staff_page`` for an anonymous visitor; answered with a redirect."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def staff_page(request: Request) -> Principal:
    """The staff member viewing a page; redirect to /login or 403 otherwise."""
    try:
        principal = current_principal(request)
    except ApiError:
        principal = None
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(quote(target, safe="/?=&"))
    if not principal.is_staff:
        raise ApiError(403, "platform staff only")
    return principal
