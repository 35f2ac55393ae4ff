"""Tamper evidence over HTTP: the install's public signing key, for anyone verifying a bundle, and
an attempt's evidence bundle for supervisors and admins (signed link and session, like the media;
every download audited).

(Plain Starlette routes for now; /api/v1/signing-key belongs with the /api/v1 routes.)
"""

import tempfile
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from proctor_app.api.media import authorize_viewer, refuse
from proctor_app.auth.roles import EVIDENCE
from proctor_app.db import session_scope
from proctor_app.media.evidence.bundle import write_bundle
from proctor_app.media.evidence.signing import ALGORITHM, fingerprint, install_key, public_key_text
from proctor_app.media.playback.links import PREFIX
from proctor_app.media.storage import storage
from proctor_app.models import AuditLog


def signing_key(request: Request) -> JSONResponse:
    public_key = public_key_text(install_key())
    return JSONResponse({"algorithm": ALGORITHM, "public_key": public_key,
                         "fingerprint_sha256": fingerprint(public_key)},
                        headers={"Cache-Control": "public, max-age=300"})


def _build(attempt_id: int) -> tuple[Path, dict]:
    handle = tempfile.NamedTemporaryFile(prefix="evidence-", suffix=".zip", delete=False)
    handle.close()
    path = Path(handle.name)
    try:
        return path, write_bundle(attempt_id, path, storage, install_key())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def evidence_bundle(request: Request) -> Response:
    attempt_id = request.path_params["attempt_id"]
    with session_scope() as db:
        viewer = authorize_viewer(request, db)
        if isinstance(viewer, Response):
            return viewer
        if viewer.role not in EVIDENCE:
            return refuse(403, "Only supervisors and administrators may download evidence bundles.")
    try:
        path, index = await run_in_threadpool(_build, attempt_id)
    except LookupError:
        return refuse(410, "This attempt's media was deleted under the retention policy.")
    with session_scope() as db:
        db.add(AuditLog(user_id=viewer.user_id, action="evidence_downloaded", target=f"attempt:{attempt_id}",
                        data={"files": len(index["files"]), "created_at": index["created_at"]}))
    # Streamed from the open file, not a FileResponse: granian sends a FileResponse's file after the
    # app has returned (pathsend), when the background unlink may already have removed it.
    return StreamingResponse(_read_then_remove(path), media_type="application/zip", headers={
        "Cache-Control": "private, no-store", "Content-Length": str(path.stat().st_size),
        "Content-Disposition": f'attachment; filename="attempt-{attempt_id}-evidence.zip"'})


def _read_then_remove(path: Path, piece: int = 1 << 20):
    try:
        with path.open("rb") as handle:
            while data := handle.read(piece):
                yield data
    finally:
        path.unlink(missing_ok=True)


routes = [
    Route("/api/v1/signing-key", signing_key, methods=["GET"]),
    Route(PREFIX + "/{attempt_id:int}/evidence", evidence_bundle, methods=["GET"]),
]
