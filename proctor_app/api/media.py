"""Recorded media for reviewers: MP4, poster, sprite, HLS ladder and snapshots of an attempt.

A request needs BOTH a staff session (cookie) and a signed link made for that same user, which
expires; or a link made for an API key (integration API), valid while the key is. URLs name media by attempt and kind only, never by storage path. Every view and download
is written to the audit log. HLS playlists are sent with every URI in them rewritten to a link
signed for the same viewer, so each segment passes the same checks.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from proctor_app.auth.roles import STAFF_REVIEW
from proctor_app.auth.sessions import SESSION_COOKIE, user_for_token
from proctor_app.db import session_scope
from proctor_app.media.playback.links import (
    KEY_PARAM,
    PREFIX,
    LinkError,
    check_key_link,
    check_link,
    grant,
    key_recording_link,
    recording_link,
)
from proctor_app.media.playback.playlists import rewrite_uris
from proctor_app.media.playback.ranges import serve_file
from proctor_app.media.storage import storage
from proctor_app.media.storage.layout import HLS_FILE_NAME
from proctor_app.models import Attempt, AuditLog, Recording, RecordingStatus, Snapshot, StreamKind, utcnow
from proctor_app.services.api_keys import key_reads_attempt
from proctor_app.services.organisations import sees_attempt
from proctor_app.services.review import may_review

# A <video> fetches many ranges while someone watches; one audit row per viewer, file and window.
VIEW_AUDIT_WINDOW = timedelta(minutes=10)
RECORDING_ASSETS = {"video": "mp4_path", "poster": "poster_path", "sprite": "sprite_path"}


def refuse(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status, headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class Viewer:
    """Who fetches media: a staff user, or an integrator's API key (user_id None)."""

    user_id: int | None
    api_key_id: int | None = None
    role: str | None = None  # the staff user's


def _authorize_key(request: Request, db: Session, key_param: str) -> Viewer | Response:
    """A link made for an API key: valid while the key is, for its organisation's attempts."""
    if request.query_params.get("download"):
        return refuse(403, "This media link is invalid.")
    try:
        key_id = check_key_link(request.url.path, key_param, request.query_params.get("exp"),
                                request.query_params.get("sig"))
    except LinkError as exc:
        return refuse(403, str(exc))
    if not key_reads_attempt(db, key_id, request.path_params["attempt_id"]):
        return refuse(404, "No such attempt.")
    return Viewer(None, key_id)


def authorize_viewer(request: Request, db: Session) -> Viewer | Response:
    """The staff user behind the session cookie, if the link was signed for them, is still
    valid, and names an attempt they may review (or the API key the link was made for); otherwise
    the refusal to send."""
    key_param = request.query_params.get(KEY_PARAM)
    if key_param is not None:
        return _authorize_key(request, db, key_param)
    user = user_for_token(request.cookies.get(SESSION_COOKIE), db)
    if user is None:
        return refuse(401, "Sign in to see recordings.")
    if user.role not in STAFF_REVIEW:
        return refuse(403, "Your account may not see recordings.")
    download = request.query_params.get("download") == "1"
    try:
        check_link(grant(user.id, request.url.path, download),
                   request.query_params.get("exp"), request.query_params.get("sig"))
    except LinkError as exc:
        return refuse(403, str(exc))
    attempt = db.get(Attempt, request.path_params["attempt_id"])
    if not sees_attempt(db, user, attempt):
        return refuse(404, "No such attempt.")
    if not may_review(db, user, attempt):
        return refuse(403, "You may not see recordings of this exam.")
    return Viewer(user.id, role=user.role)


def _audit(db: Session, viewer: Viewer, target: str, download: bool, status: int) -> None:
    action = "media_downloaded" if download else "media_viewed"
    data = {"status": status} | ({"api_key": viewer.api_key_id} if viewer.api_key_id else {})
    if not download and viewer.user_id is not None:  # an integrator's fetches are each audited
        recent = db.exec(select(AuditLog.id).where(
            AuditLog.user_id == viewer.user_id, AuditLog.action == action, AuditLog.target == target,
            AuditLog.at > utcnow() - VIEW_AUDIT_WINDOW)).first()
        if recent is not None:
            return
    db.add(AuditLog(user_id=viewer.user_id, action=action, target=target, data=data))


def send_media(request: Request, db: Session, user: Viewer, relative: str, target: str,
               download_name: str | None, length: int | None = None) -> Response:
    try:
        plan = serve_file(storage.absolute(relative), request.headers.get("range"),
                          request.headers.get("if-range"), length)
    except (FileNotFoundError, IsADirectoryError, ValueError):
        return refuse(404, "This file is not available.")
    headers = plan.headers | {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if plan.body is None:
        return Response(status_code=plan.status, headers=headers)
    download = download_name is not None
    # A download resumed at an offset is the same download; views are deduplicated in _audit.
    resumed = plan.status == 206 and not plan.headers["Content-Range"].startswith("bytes 0-")
    if not (download and resumed):
        _audit(db, user, target, download, plan.status)
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    if request.method == "HEAD":
        plan.body.close()
        return Response(status_code=plan.status, headers=headers)
    return StreamingResponse(plan.body, status_code=plan.status, headers=headers)


def recording_media(request: Request) -> Response:
    attempt_id = request.path_params["attempt_id"]
    stream, asset = request.path_params["stream"], request.path_params["asset"]
    download = request.query_params.get("download") == "1"
    with session_scope() as db:
        user = authorize_viewer(request, db)
        if isinstance(user, Response):
            return user
        if stream not in set(StreamKind) or asset not in RECORDING_ASSETS:
            return refuse(404, "No such media.")
        if download and asset != "video":
            return refuse(404, "Only the video can be downloaded.")
        recording = _recording_or_refusal(db, attempt_id, stream)
        if isinstance(recording, Response):
            return recording
        relative = getattr(recording, RECORDING_ASSETS[asset])
        if not relative:
            return refuse(404, "This file is not available (yet).")
        name = f"attempt-{attempt_id}-{stream}.mp4" if download else None
        return send_media(request, db, user, relative, f"attempt:{attempt_id}/{stream}/{asset}", name)


def _recording_or_refusal(db: Session, attempt_id: int, stream: str) -> Recording | Response:
    recording = db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                                Recording.stream == stream)).first()
    if recording is None:
        return refuse(404, "No such recording.")
    if recording.status == RecordingStatus.expired:
        return refuse(410, "This recording was deleted under the retention policy.")
    return recording


def _hls_link(viewer: Viewer, attempt_id: int, stream: str, name: str) -> str:
    """A file of the ladder, linked for the viewer who fetched the playlist naming it."""
    if not HLS_FILE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a file of an HLS ladder")
    asset = f"hls/{name}"
    if viewer.api_key_id is not None:
        return key_recording_link(viewer.api_key_id, attempt_id, stream, asset)
    return recording_link(viewer.user_id, attempt_id, stream, asset)


def recording_hls(request: Request) -> Response:
    """A file of a recording's HLS ladder: playlists rewritten for the viewer, segments as files."""
    attempt_id, stream, name = (request.path_params[k] for k in ("attempt_id", "stream", "name"))
    with session_scope() as db:
        viewer = authorize_viewer(request, db)
        if isinstance(viewer, Response):
            return viewer
        if stream not in set(StreamKind) or not HLS_FILE_NAME.fullmatch(name):
            return refuse(404, "No such media.")
        recording = _recording_or_refusal(db, attempt_id, stream)
        if isinstance(recording, Response):
            return recording
        if not recording.hls_path:
            return refuse(404, "This file is not available (yet).")
        relative = f"{recording.hls_path.rsplit('/', 1)[0]}/{name}"
        target = f"attempt:{attempt_id}/{stream}/hls"
        if not name.endswith(".m3u8"):
            return send_media(request, db, viewer, relative, target, None)
        try:
            text = storage.absolute(relative).read_text()
        except FileNotFoundError:
            return refuse(404, "This file is not available.")
        _audit(db, viewer, target, False, 200)
        body = rewrite_uris(text, lambda uri: _hls_link(viewer, attempt_id, stream, uri))
        return Response(body, media_type="application/vnd.apple.mpegurl",
                        headers={"Cache-Control": "private, no-store"})


def snapshot_media(request: Request) -> Response:
    attempt_id, seq = request.path_params["attempt_id"], request.path_params["seq"]
    with session_scope() as db:
        user = authorize_viewer(request, db)
        if isinstance(user, Response):
            return user
        snapshot = db.exec(select(Snapshot).where(Snapshot.attempt_id == attempt_id,
                                                  Snapshot.seq == seq)).first()
        if snapshot is None:
            return refuse(404, "No such snapshot.")
        return send_media(request, db, user, snapshot.path, f"attempt:{attempt_id}/snapshot/{seq}", None)


routes = [
    Route(PREFIX + "/{attempt_id:int}/snapshots/{seq:int}", snapshot_media, methods=["GET"]),
    Route(PREFIX + "/{attempt_id:int}/{stream}/hls/{name}", recording_hls, methods=["GET"]),
    Route(PREFIX + "/{attempt_id:int}/{stream}/{asset}", recording_media, methods=["GET"]),
]
