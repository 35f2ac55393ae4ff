"""The WHIP/WHEP routes of the running app without a browser: every refusal of publishing and
viewing, and who may end a session (aiortc peers on an event loop of their own)."""

import asyncio

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection
from sqlmodel import select

from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.models import Exam, User
from proctor_app.services import attempts
from proctor_app.services.settings import settings_cache, update_settings
from tests.support.live_clients import NumberedCamera, Publisher, Viewer, eventually, run_async
from tests.support.live_exams import LiveExam, live_events, make_live_exam, signed_in


async def publish_over_http(client: httpx.AsyncClient, live: LiveExam) -> tuple[Publisher, str]:
    publisher = Publisher({"camera": NumberedCamera()})
    location = {}

    async def signal(offer: str) -> str:
        response = await client.post(f"{live.publish_url}?streams=camera",
                                     headers={"Authorization": f"Bearer {live.token}",
                                              "Content-Type": "application/sdp"}, content=offer)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/sdp")
        location["url"] = response.headers["location"]
        assert response.headers["access-control-expose-headers"] == "Location, Link"
        return response.text

    await publisher.start(signal)
    return publisher, location["url"]


def test_publish_needs_the_attempts_token_and_live_video_on(app_server):
    async def scenario():
        live, other = make_live_exam(), make_live_exam()
        sdp = {"Content-Type": "application/sdp"}

        async with httpx.AsyncClient(base_url=app_server.url) as client:
            async def post(live_exam: LiveExam, token: str | None, body: str = "v=0", headers=sdp, streams="camera"):
                auth = {"Authorization": f"Bearer {token}"} if token else {}
                return await client.post(f"{live_exam.publish_url}?streams={streams}", content=body,
                                         headers={**headers, **auth})

            missing = await post(live, None)
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            assert (await post(live, "not-a-token")).status_code == 401
            assert (await post(live, other.token)).status_code == 403  # another attempt's token
            assert (await post(live, live.token, streams="screen")).status_code == 403  # not recorded
            assert (await post(live, live.token, headers={"Content-Type": "text/plain"})).status_code == 415
            assert (await post(live, live.token, body="not sdp")).status_code == 400

            with session_scope() as db:
                db.get(Exam, live.exam_id).live_video = False
            assert (await post(live, live.token)).status_code == 403
            with session_scope() as db:
                db.get(Exam, live.exam_id).live_video = True
                update_settings(db, {"live_video_enabled": False}, None)
            try:
                assert (await post(live, live.token)).status_code == 403
            finally:
                with session_scope() as db:
                    update_settings(db, {"live_video_enabled": True}, None)
                # The server's relay may have cached "off" (and would end sessions until it
                # reads the settings again).
                await asyncio.sleep(settings_cache.ttl_s + 0.5)

            with session_scope() as db:
                candidate_id = db.exec(select(User.id).where(User.email == live.candidate)).one()
                attempts.submit(db, attempts.attempt_for(db, live.exam_id, candidate_id))
            assert (await post(live, live.token)).status_code == 409

    run_async(scenario())


def test_viewing_needs_a_proctor_of_the_exam_and_sessions_end_only_for_their_owner(app_server):
    async def scenario():
        live = make_live_exam()
        async with httpx.AsyncClient(base_url=app_server.url) as client:
            async def view(headers: dict, stream: str = "camera_low", body: str = "v=0"):
                return await client.post(live.view_url(stream), content=body,
                                         headers={"Content-Type": "application/sdp", **headers})

            assert (await view({})).status_code == 401
            assert (await view({"Cookie": f"{SESSION_COOKIE}=forged"})).status_code == 401
            assert (await view(signed_in(live.candidate))).status_code == 403
            assert (await view(signed_in("proctor@example.com"))).status_code == 403  # not assigned
            proctor = signed_in(live.proctors[0])
            assert (await view(proctor, stream="microphone")).status_code == 404
            # Let through to the offer, which is not SDP: the refusals above were about who asks.
            assert (await view(signed_in("supervisor@example.com"))).status_code == 400
            assert (await view(proctor)).status_code == 400

            publisher, location = await publish_over_http(client, live)
            viewer = Viewer(decode=False)

            async def signal(offer: str) -> str:
                response = await view(proctor, stream="camera", body=offer)
                assert response.status_code == 201, response.text
                return response.text

            await viewer.start(signal)
            assert await viewer.wait_frames(5, timeout=10)

            owner = {"Authorization": f"Bearer {live.token}"}
            assert (await client.delete(location)).status_code == 401
            assert (await client.delete(location, headers={"Authorization": f"Bearer {make_live_exam().token}"})
                    ).status_code == 403
            assert (await client.delete(location, headers=proctor)).status_code == 403
            assert (await client.patch(location)).status_code == 401
            assert (await client.patch(location, headers=owner)).status_code == 405
            assert (await client.delete(location + "x", headers=owner)).status_code == 404
            assert (await client.delete(location, headers=owner)).status_code == 200
            assert await eventually(lambda: live_events(live.attempt_id) == [
                ("live_connected", ""), ("live_lost", "publisher_left")], timeout=5)
            await viewer.close()
            await publisher.close()

    run_async(scenario())


async def offer_with(*kinds: str) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    return pc.localDescription.sdp


def test_standard_clients_get_options_cors_and_the_rfc_status_codes(app_server):
    live = make_live_exam()
    audio_only = run_async(offer_with("audio"))
    with httpx.Client(base_url=app_server.url) as client:
        for url in (live.publish_url, live.view_url("camera")):
            options = client.options(url)
            assert options.status_code == 204, url
            assert options.headers["accept-post"] == "application/sdp"
            # A browser player on another origin asks first; the app's CORS middleware grants only
            # PROCTOR_CORS_ORIGINS, and this server lists none.
            preflight = client.options(url, headers={
                "Origin": "https://player.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})
            assert preflight.status_code == 400
            assert "access-control-allow-origin" not in preflight.headers

        sdp = {"Content-Type": "application/sdp", "Authorization": f"Bearer {live.token}"}
        post = lambda body, headers=sdp: client.post(f"{live.publish_url}?streams=camera",  # noqa: E731
                                                      content=body, headers=headers)
        assert post(audio_only).status_code == 422  # a real offer, but no video section
        assert post(audio_only, {**sdp, "Content-Type": "application/json"}).status_code == 415
        assert post("not sdp").status_code == 400
        viewer = signed_in(live.proctors[0]) | {"Content-Type": "application/sdp"}
        refused = client.post(live.view_url("camera"), content=audio_only, headers=viewer)
        assert refused.status_code == 422, refused.text
