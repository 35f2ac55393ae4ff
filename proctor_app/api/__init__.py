"""HTTP routes under /api (Starlette), mounted in front of Reflex by api_transformer."""

import re

from starlette.applications import Starlette
from starlette.routing import Mount

from proctor_app.api import clock, ingest, live, media, monitoring, preview
from proctor_app.api.v1 import MOUNT, build_v1


def build_api() -> Starlette:
    v1 = Mount(MOUNT, app=build_v1())
    # Its pattern's "." stops at a newline: a path with %0A would get a plain-text 404 here instead
    # of /api/v1's problem document.
    v1.path_regex = re.compile(v1.path_regex.pattern, re.DOTALL)
    return Starlette(routes=[*clock.routes, *ingest.routes, *preview.routes, *media.routes, *live.routes,
                             *monitoring.routes, v1])
