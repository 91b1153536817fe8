"""Errors as JSON ``{"error": "...", "detail": ...}`` with the right status; never a trace.

The handlers the app installs: a page gets an HTML error page (or the login
redirect), the API and scripts get JSON. The vocabulary they render
(``ApiError``, ``error_body``) is in ``errors``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from voicewatch.web.errors import ApiError, error_body, is_disk_full, log
from voicewatch.web.page_deps import LoginRequired


def _wants_html(request: Request) -> bool:
    """Pages get an HTML error page; the API (and scripts) get JSON."""
    path = request.url.path
    if path.startswith(("/api/", "/openapi.json", "/metrics", "/static/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.error if isinstance(exc, ApiError) else str(exc.detail)
        if _wants_html(request):
            from voicewatch.web.templating import render

            return render(
                request,
                "error.html",
                {"status": exc.status_code, "message": message},
                exc.status_code,
            )
        body = error_body(message, exc.extra if isinstance(exc, ApiError) else None)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(LoginRequired)
    async def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            problems.append({"field": where, "message": err.get("msg", "invalid")})
        first = problems[0] if problems else {"field": "", "message": "invalid"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return JSONResponse(
            error_body(message, jsonable_encoder(problems)),
            status_code=422,
        )

    @app.exception_handler(DataError)
    async def _bad_value(_request: Request, exc: DataError) -> JSONResponse:
        log.info("value refused by the database: %s", str(exc).splitlines()[0][:200])
        return JSONResponse(
            error_body("a value was refused by the database (e.g. a NUL character)"),
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        if is_disk_full(exc):
            # 507 Insufficient Storage: nothing was stored, and retrying at once
            # will not help until space is freed (clients keep their data).
            log.error("the database's disk is full: %s", str(exc).splitlines()[0][:200])
            return JSONResponse(
                error_body("the database's disk is full; nothing was stored, send again later"),
                status_code=507,
                headers={"Retry-After": "10"},
            )
        log.warning("database unavailable: %s", str(exc).splitlines()[0][:200])
        return JSONResponse(
            error_body("the database is unavailable; try again"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        from voicewatch.web.headers import security_headers

        log.exception("unhandled error", exc_info=exc)
        # sent by Starlette's outermost error middleware, past SecurityHeaders: add them here
        hsts = bool(getattr(request.app.state.settings, "secure_cookies", False))
        headers = {k.decode(): v.decode() for k, v in security_headers("/", hsts=hsts)}
        return JSONResponse(error_body("internal error"), status_code=500, headers=headers)
