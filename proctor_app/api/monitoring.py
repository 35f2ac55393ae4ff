"""Routes for operators: liveness (/api/health), readiness (/api/ready) and Prometheus (/metrics).

/metrics is answered to the allowed client addresses (PROCTOR_METRICS_ALLOW, default the local
host; behind a trusted proxy, the address it forwards) or to a request with the token (PROCTOR_METRICS_TOKEN), else 401/403 as problem details.
"""

import hmac
import ipaddress
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from proctor_app.api.clients import client_address
from proctor_app.api.ingest import bearer_token
from proctor_app.config import config
from proctor_app.db import session_scope
from proctor_app.metrics import registry
from proctor_app.models import utcnow
from proctor_app.runtime import ingest_pool, readiness, relay
from proctor_app.services.health import disk_space, queue_figures
from proctor_app.services.readiness import Readiness

NO_STORE = {"Cache-Control": "no-store"}


def problem(status: int, title: str, detail: str, headers: dict | None = None) -> JSONResponse:
    """An RFC 9457 problem details answer."""
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail},
                        status_code=status, media_type="application/problem+json",
                        headers={**NO_STORE, **(headers or {})})


@dataclass(frozen=True)
class MetricsAccess:
    allow: tuple[str, ...]
    token: str
    trusted_proxies: tuple[str, ...]

    def refusal(self, request: Request) -> Response | None:
        """None when the request may read the metrics, else the answer refusing it."""
        given = bearer_token(request)
        if self.token and given and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        if given is None and self._allowed_address(client_address(request, self.trusted_proxies)):
            return None
        if self.token:
            return problem(401, "Unauthorized", "Send the metrics token as a bearer token.",
                           {"WWW-Authenticate": 'Bearer realm="metrics"'})
        return problem(403, "Forbidden", "Metrics are not served to this address.")

    def _allowed_address(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(net, strict=False) for net in self.allow)


class PlatformCollector:
    """Figures read when scraped: the job queue (shared by every process), the live
    sessions and ingest processes, the storage disk."""

    def collect(self):
        with session_scope() as db:
            depth, oldest = queue_figures(db, utcnow())
        yield GaugeMetricFamily("proctor_job_queue_depth", "Jobs due and waiting for a worker.", depth)
        yield GaugeMetricFamily("proctor_job_queue_oldest_seconds",
                                "How long the oldest due job has waited.", oldest)
        sessions = GaugeMetricFamily("proctor_live_sessions",
                                     "Live video sessions of the relay processes (without them, of this process).",
                                     labels=["role"])
        for role, count in relay.session_counts().items():
            sessions.add_metric([role], count)
        yield sessions
        if ingest_pool is not None:
            yield GaugeMetricFamily("proctor_ingest_processes_alive", "Ingest processes alive.",
                                    sum(1 for p in ingest_pool.processes if p.alive))
        free, total = disk_space(config.storage_dir)
        yield GaugeMetricFamily("proctor_disk_free_bytes", "Free bytes on the storage disk.", free)
        yield GaugeMetricFamily("proctor_disk_total_bytes", "Size of the storage disk.", total)


registry.register(PlatformCollector())


def monitoring_routes(access: MetricsAccess, readiness: Readiness) -> list[Route]:
    async def ready(request: Request) -> JSONResponse:
        checks = await run_in_threadpool(readiness.run)
        ok = all(check.ok for check in checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready",
                             "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()}},
                            status_code=200 if ok else 503, headers=NO_STORE)

    async def metrics(request: Request) -> Response:
        refused = access.refusal(request)
        if refused is not None:
            return refused
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)

    return [Route("/api/health", health, methods=["GET"]),
            Route("/api/ready", ready, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"])]


async def health(request: Request) -> JSONResponse:
    """Liveness: the process answers (nothing else is checked)."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


routes = monitoring_routes(MetricsAccess(config.metrics_allow, config.metrics_token, config.trusted_proxies),
                          readiness)
