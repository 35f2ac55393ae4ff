"""RFC 9457 problem details for every error of /api/v1, the framework's own (404, 405, invalid
or malformed bodies and parameters) included."""

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from proctor_app.api.v1.schemas import Problem

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("proctor_app.api")


class ApiProblem(Exception):
    """Raised by a handler: answered as a problem document."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def problem_response(status: int, detail: str = "", errors: list | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE,
                        headers={"Cache-Control": "no-store", **(headers or {})})


def problem_content(description: str) -> dict:
    """An OpenAPI response entry whose body is a Problem."""
    return {"description": description,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": [str(part) for part in error.get("loc", ())], "msg": error.get("msg", ""),
               "type": error.get("type", "")} for error in exc.errors()]
    if any(error["type"] == "json_invalid" for error in errors):
        return problem_response(400, "The body is not valid JSON.", errors)
    return problem_response(422, "The request is not valid; see errors.", errors)


def _http(_request: Request, exc: HTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != HTTPStatus(exc.status_code).phrase else ""
    return problem_response(exc.status_code, detail, headers=exc.headers)


def _api(_request: Request, exc: ApiProblem) -> JSONResponse:
    return problem_response(exc.status, exc.detail, headers=exc.headers)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "Something went wrong on our side; it was logged.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(ApiProblem, _api)
    app.add_exception_handler(Exception, _unexpected)
