"""RFC 9457 problem details: every error the API answers is `application/problem+json` with a resolution key.

User mistakes are 4xx with a message saying how to fix them; only a bug is a 500, and its text never
reaches the client (it may quote data)."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ttsync.app.accounts import AccessError
from ttsync.errors import ConfigError, NotFoundError, ResolvableError, RunRefusedError, WorkspaceError
from ttsync.redact import redact_error

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


class ProblemDocument(BaseModel):
    """An RFC 9457 problem: what went wrong and the resolution key of the fix."""

    type: str
    title: str
    status: int
    detail: str
    resolution: str | None = None
    errors: list[dict[str, Any]] | None = None


def _documented(status: int, description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/ProblemDocument"}
    return {"description": description, "content": {PROBLEM_TYPE: {"schema": schema}}}


# Added to every route: the problem documents it may answer (the fuzz test checks answers against them).
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented(400, "Bad request: the detail says how to fix it"),
    401: _documented(401, "Not authenticated"),
    403: _documented(403, "Forbidden: role, admin-only destination, or CSRF token missing"),
    404: _documented(404, "Not found"),
    409: _documented(409, "Refused: a run is active, or the object is in use"),
    422: _documented(422, "Invalid request or configuration"),
}


class Problem(Exception):
    """Raise to answer a problem document."""

    def __init__(self, status: int, title: str, detail: str, *, resolution: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.resolution = resolution


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    resolution: str | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": f"https://ttsync.dev/problems/{resolution or 'http-' + str(status)}",
        "title": title,
        "status": status,
        "detail": detail,
        "resolution": resolution,
    }
    body.update(extra or {})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Locations and messages only: pydantic's `input` echoes what was sent (a password, a secret).
    return [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", ""))} for err in exc.errors()]


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem documents."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, resolution=exc.resolution)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422,
            "Invalid request",
            "the request does not match the API schema: see `errors` and /api/docs",
            resolution="invalid_request",
            extra={"errors": _validation_errors(exc)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(AccessError)
    async def _access(_: Request, exc: AccessError) -> JSONResponse:
        return problem_response(401, "Not authenticated", str(exc), resolution="not_authenticated")

    @app.exception_handler(NotFoundError)
    async def _missing(_: Request, exc: NotFoundError) -> JSONResponse:
        return problem_response(404, "Not found", redact_error(exc), resolution="object_not_found")

    @app.exception_handler(RunRefusedError)
    async def _refused(_: Request, exc: RunRefusedError) -> JSONResponse:
        return problem_response(409, "Refused", redact_error(exc), resolution=exc.resolution_key)

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        return problem_response(
            422, "Configuration error", redact_error(exc), resolution="configuration_error"
        )

    @app.exception_handler(ResolvableError)
    async def _resolvable(_: Request, exc: ResolvableError) -> JSONResponse:
        return problem_response(400, "Refused", redact_error(exc), resolution=exc.resolution_key)

    @app.exception_handler(WorkspaceError)
    async def _workspace(_: Request, exc: WorkspaceError) -> JSONResponse:
        return problem_response(400, "Bad request", redact_error(exc), resolution="configuration_error")

    @app.exception_handler(ValueError)
    async def _value(_: Request, exc: ValueError) -> JSONResponse:
        return problem_response(400, "Bad request", redact_error(exc), resolution="invalid_request")

    @app.exception_handler(sa.exc.IntegrityError)
    async def _conflict(_: Request, exc: sa.exc.IntegrityError) -> JSONResponse:
        return problem_response(
            409,
            "Conflict",
            "another object refers to this one (or it exists already): change that first",
            resolution="invalid_request",
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s in the API (a bug: please report it)", type(exc).__name__, exc_info=exc)
        return problem_response(
            500, "Internal error", f"unexpected {type(exc).__name__}", resolution="internal_error"
        )
