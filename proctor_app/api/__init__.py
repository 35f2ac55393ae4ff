"""HTTP routes under /api (Starlette), mounted in front of Reflex by api_transformer."""

from starlette.applications import Starlette
from starlette.routing import Mount

from proctor_app.api import clock, ingest, live, media, monitoring, preview
from proctor_app.api.auth import auth_routes
from proctor_app.api.v1 import MOUNT, build_v1
from proctor_app.runtime import login_throttle


def build_api() -> Starlette:
    return Starlette(routes=[*auth_routes(login_throttle), *clock.routes, *ingest.routes,
                             *preview.routes, *media.routes, *live.routes, *monitoring.routes,
                             Mount(MOUNT, app=build_v1())])
