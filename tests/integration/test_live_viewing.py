"""Watching live as an integrator does, with an aiortc WHEP client against the running app: an API
key as Bearer, or the signed viewer link of GET /api/v1/sessions/{id}/live-viewer as the WHEP URL
of a standard player; who watched what, from when to when, lands in the audit log and on the
attempt's list of views; PATCH answers as RFC 9725 asks of a resource without ICE restarts."""

from urllib.parse import urlsplit

import httpx
from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.models import ApiKey, AuditLog, User
from proctor_app.services import api_keys
from proctor_app.services.live_views import LiveViewer, attempt_views, audit_view_started
from tests.support.api import Caller, make_caller, wrap_attempt
from tests.support.live_clients import Viewer, eventually, run_async
from tests.support.live_exams import LiveExam, make_live_exam
from tests.integration.test_live_api import publish_over_http, signed_in

SDP = {"Content-Type": "application/sdp"}


def _integrator_exam(scopes: list[str] | None = None) -> tuple[LiveExam, Caller, str]:
    """A live attempt in progress, wrapped in an API session of a new organisation whose key
    (all scopes unless given) the test holds; and the session's id."""
    live = make_live_exam()
    with session_scope() as db:
        caller = make_caller(db, scopes)
        session = wrap_attempt(db, caller.organisation_id, live.attempt_id)
        return live, caller, session.public_id


def _key_id(caller: Caller) -> int:
    with session_scope() as db:
        return db.exec(select(ApiKey.id).where(ApiKey.prefix == caller.key[:15])).one()


def _live_rows(attempt_id: int) -> list[AuditLog]:
    with session_scope() as db:
        return list(db.exec(select(AuditLog).where(
            AuditLog.target == f"attempt:{attempt_id}", AuditLog.action.startswith("live_view_"))
            .order_by(AuditLog.id)))


async def _watch(client: httpx.AsyncClient, url: str, headers: dict) -> tuple[Viewer, str]:
    viewer = Viewer(decode=False)
    location = {}

    async def signal(offer: str) -> str:
        response = await client.post(url, content=offer, headers={**SDP, **headers})
        assert response.status_code == 201, response.text
        location["url"] = response.headers["location"]
        return response.text

    await viewer.start(signal)
    return viewer, location["url"]


def test_an_api_key_with_sessions_read_watches_its_organisations_attempts_over_whep(app_server):
    async def scenario():
        live, caller, _ = _integrator_exam()
        other_org = make_live_exam()  # stays in the default organisation
        no_scope_exam = make_live_exam()
        with session_scope() as db:
            no_scope = make_caller(db, ["recordings:read"])
            wrap_attempt(db, no_scope.organisation_id, no_scope_exam.attempt_id)
            revoked = make_caller(db)
        with session_scope() as db:
            api_keys.revoke_key(db, _key_id(revoked), None)
        async with httpx.AsyncClient(base_url=app_server.url) as client:
            async def post(live_exam: LiveExam, headers: dict, stream: str = "camera"):
                return await client.post(live_exam.view_url(stream), content="v=0", headers={**SDP, **headers})

            assert (await post(other_org, caller.headers)).status_code == 404
            assert (await post(live, revoked.headers)).status_code == 401
            bad = await post(live, {"Authorization": "Bearer pk_000000000000_nonsense"})
            assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
            assert (await post(no_scope_exam, no_scope.headers)).status_code == 403
            assert (await post(live, caller.headers, stream="screen")).status_code == 403  # not published
            assert (await post(live, caller.headers)).status_code == 400  # let through to the offer

            publisher, _ = await publish_over_http(client, live)
            viewer, location = await _watch(client, live.view_url("camera"), caller.headers)
            assert await viewer.wait_frames(5, timeout=20)
            assert (await client.delete(location, headers=signed_in(live.proctors[0]))).status_code == 403
            assert (await client.delete(location, headers=caller.headers)).status_code == 200
            assert await eventually(lambda: [r.action for r in _live_rows(live.attempt_id)]
                                    == ["live_view_started", "live_view_ended"], timeout=10)
            started, ended = _live_rows(live.attempt_id)
            assert started.user_id is None and started.data["api_key"] == _key_id(caller)
            assert started.data["via"] == "bearer" and started.data["stream"] == "camera"
            assert ended.data["session"] == started.data["session"] and ended.at >= started.at
            await viewer.close()
            await publisher.close()

    run_async(scenario())


def test_a_signed_viewer_link_is_a_whep_url_for_a_standard_player(app_server):
    async def scenario():
        live, caller, session_id = _integrator_exam()
        async with httpx.AsyncClient(base_url=app_server.url) as client:
            answer = await client.get(f"/api/v1/sessions/{session_id}/live-viewer", headers=caller.headers)
            assert answer.status_code == 200, answer.text
            links = {s["stream"]: s["whep_url"] for s in answer.json()["streams"]}
            assert set(links) == {"camera", "camera_low"}
            camera = links["camera"]
            path = urlsplit(camera).path + "?" + urlsplit(camera).query
            assert path.startswith(live.view_url("camera") + "?")

            tampered = path.replace("camera/view", "camera_low/view")
            assert (await client.post(tampered, content="v=0", headers=SDP)).status_code == 403
            assert (await client.options(path)).status_code == 204

            publisher, _ = await publish_over_http(client, live)
            viewer, location = await _watch(client, path, {})  # the link is the only credential
            assert await viewer.wait_frames(5, timeout=20)
            assert "sig=" in location  # the player ends its session with no other credential
            assert (await client.delete(location.split("?")[0])).status_code == 401
            assert (await client.delete(location)).status_code == 200
            assert await eventually(lambda: len(_live_rows(live.attempt_id)) == 2, timeout=10)
            with session_scope() as db:
                views = attempt_views(db, live.attempt_id)
            assert len(views) == 1 and views[0].what == "live camera"
            assert views[0].who.startswith("API key test key") and views[0].who.endswith("signed link")
            assert views[0].started and views[0].ended >= views[0].started

            with session_scope() as db:
                api_keys.revoke_key(db, _key_id(caller), None)
            assert (await client.post(path, content="v=0", headers=SDP)).status_code == 404
            await viewer.close()
            await publisher.close()

    run_async(scenario())


def test_patch_for_an_ice_restart_gets_405_without_allowing_patch(app_server):
    """aiortc cannot restart ICE (see the README's Live proctoring), so the session does not offer
    PATCH: RFC 9725 section 4.3.1, 405 for a resource that supports neither trickle nor restarts."""
    async def scenario():
        live, caller, _ = _integrator_exam()
        async with httpx.AsyncClient(base_url=app_server.url) as client:
            publisher, _ = await publish_over_http(client, live)
            viewer, location = await _watch(client, live.view_url("camera"), caller.headers)
            restart = await client.patch(location, headers={
                **caller.headers, "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"},
                content="a=ice-ufrag:new1\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\n")
            assert restart.status_code == 405 and "PATCH" not in restart.headers["allow"]
            await viewer.close()
            await publisher.close()

    run_async(scenario())


def test_the_attempts_views_list_live_views_beside_its_recordings_views(demo_db):
    live = make_live_exam()
    with session_scope() as db:
        proctor = db.exec(select(User).where(User.email == live.proctors[0])).one()
        target = f"attempt:{live.attempt_id}"
        db.add_all([AuditLog(user_id=proctor.id, action="media_viewed", target=f"{target}/camera/video"),
                    AuditLog(user_id=proctor.id, action="media_viewed", target=f"{target}/snapshot/3"),
                    # another attempt's, whose id starts with this one's
                    AuditLog(user_id=proctor.id, action="media_viewed", target=f"{target}0/camera/video"),
                    AuditLog(user_id=proctor.id, action="evidence_downloaded", target=target)])
        audit_view_started(db, LiveViewer(user_id=proctor.id), live.attempt_id, "screen", "s1")
    with session_scope() as db:
        views = attempt_views(db, live.attempt_id)
    assert [(v.who, v.what, bool(v.ended)) for v in views] == [
        (proctor.name, "recording camera video", False), (proctor.name, "download of evidence bundle", False),
        (proctor.name, "live screen", False)]
