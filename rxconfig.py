import os

import reflex as rx
from reflex.plugins.sitemap import SitemapPlugin

from proctor_app.cors import cors_allowed_origins

port = int(os.environ.get("PROCTOR_PORT", "8000"))
# The live relay (peer connections) lives in the app process, so publisher and viewers must meet in
# the same one: one worker, also with Redis, unless GRANIAN_WORKERS says otherwise.
os.environ.setdefault("GRANIAN_WORKERS", "1")

config = rx.Config(
    app_name="proctor_app",
    frontend_port=port,
    backend_port=port,
    telemetry_enabled=False,
    show_built_with_reflex=False,
    redis_url=os.environ.get("REFLEX_REDIS_URL") or None,
    # Reflex's default is every origin, with credentials; see proctor_app/cors.py.
    cors_allowed_origins=cors_allowed_origins(tuple(os.environ.get("PROCTOR_CORS_ORIGINS", "").split(",")),
                                              os.environ.get("PROCTOR_PUBLIC_URL", "").strip()),
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="indigo"))],
    disable_plugins=[SitemapPlugin],
)
