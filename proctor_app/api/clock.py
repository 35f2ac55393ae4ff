"""The server's clock, for the client to measure its offset (NTP-style, over one round trip)."""

import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def server_time(request: Request) -> JSONResponse:
    return JSONResponse({"server_ms": int(time.time() * 1000)},
                        headers={"Cache-Control": "no-store"})


routes = [Route("/api/time", server_time, methods=["GET"])]
