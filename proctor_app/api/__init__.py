"""HTTP routes under /api (Starlette), mounted in front of Reflex by api_transformer."""

from starlette.applications import Starlette
from starlette.routing import Mount

from proctor_app.api import clock, evidence, ingest, live, media, monitoring, preview, sdk
from proctor_app.api.auth import auth_routes
from proctor_app.api.v1 import MOUNT, build_v1
from proctor_app.runtime import login_throttle


def build_api() -> Starlette:
    # Routes are tried in order: ingest's chunk uploads and the integration API, the busiest, come
    # first; evidence.routes (/api/v1/signing-key, public) before the /api/v1 mount, which wants a key.
    return Starlette(routes=[*ingest.routes, *evidence.routes, Mount(MOUNT, app=build_v1()),
                             *auth_routes(login_throttle), *clock.routes, *preview.routes, *media.routes,
                             *live.routes, *monitoring.routes, *sdk.routes])
