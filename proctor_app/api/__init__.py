"""HTTP routes under /api (Starlette), mounted in front of Reflex by api_transformer."""

from starlette.applications import Starlette

from proctor_app.api import clock, evidence, ingest, live, media, preview


def build_api() -> Starlette:
    return Starlette(routes=[*clock.routes, *ingest.routes, *preview.routes, *media.routes, *evidence.routes,
                               *live.routes])
