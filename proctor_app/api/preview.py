"""Live preview of a recording that is not processed yet, for reviewers (media/processing/preview.py).

GET /api/media/attempts/{attempt_id}/{camera|screen}/preview, with the same protection as the
processed media (staff session, a link signed for that user, review permission, audit log):
make the link with `media.playback.links.recording_link(user_id, attempt_id, stream, "preview")`.
"""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proctor_app.api.media import authorize_viewer, refuse, send_media
from proctor_app.db import session_scope
from proctor_app.media.playback.links import PREFIX
from proctor_app.media.processing.preview import ensure_preview
from proctor_app.models import StreamKind
from proctor_app.runtime import clock


async def recording_preview(request: Request) -> Response:
    attempt_id, stream = request.path_params["attempt_id"], request.path_params["stream"]
    with session_scope() as db:
        user = authorize_viewer(request, db)
        if isinstance(user, Response):
            return user
    if stream not in set(StreamKind):
        return refuse(404, "No such media.")
    preview = await ensure_preview(attempt_id, stream, clock)
    if preview is None:
        return refuse(404, "Nothing to preview: no upload yet, or the recording is processed.")
    with session_scope() as db:
        return send_media(request, db, user, preview.path, f"attempt:{attempt_id}/{stream}/preview", None,
                          preview.size)


# Before api.media's routes, whose /{stream}/{asset} would match this path too.
routes = [Route(PREFIX + "/{attempt_id:int}/{stream}/preview", recording_preview, methods=["GET"])]
