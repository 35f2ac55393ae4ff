"""The integration API, /api/v1 (FastAPI, mounted under /api): JSON, API keys, problem details.
The OpenAPI document is generated from the pydantic models the handlers validate with."""

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.requests import Request

from proctor_app.api.v1 import metrics, problems, sessions, webhooks
from proctor_app.api.v1.auth import ApiKeyAuth
from proctor_app.api.v1.docs import docs_page
from proctor_app.api.v1.schemas import Problem

MOUNT = "/api/v1"
DESCRIPTION = ("Proctoring sessions for other products. Send an API key as `Authorization: Bearer <key>` "
               "(or `X-API-TOKEN: <key>`); errors are RFC 9457 problem details.")


def build_v1() -> FastAPI:
    app = FastAPI(title="Proctor integration API", version="1", description=DESCRIPTION,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(sessions.router)
    app.include_router(webhooks.router)
    app.include_router(metrics.router)
    problems.install(app)

    def document() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, servers=[{"url": MOUNT}])
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}")
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"},
                                             "token": {"type": "apiKey", "in": "header", "name": "X-API-TOKEN"}}
            schema["security"] = [{"bearer": []}, {"token": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json() -> dict:
        return document()

    @app.get("/docs", include_in_schema=False)
    def docs(_request: Request):
        return docs_page(document())

    # The router's own routes: the app's list holds the included router as one opaque entry.
    app.add_middleware(ApiKeyAuth, routes=[*sessions.router.routes, *webhooks.router.routes,
                                         *metrics.router.routes])
    return app
