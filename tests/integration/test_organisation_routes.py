"""Organisation scoping of the HTTP routes of the running app: media links (video, poster,
snapshots, preview) and live viewing through the real relay answer 404 to a user of another
organisation; and `create-admin --org`."""

import httpx
import pytest
from sqlmodel import select

from proctor_app.__main__ import main
from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media.playback.links import recording_link, snapshot_link
from proctor_app.models import Organisation, User
from tests.support.factories import user_id
from tests.support.live_clients import NumberedCamera, Publisher, Viewer, run_async
from tests.support.live_exams import make_live_exam
from tests.support.organisations import make_other_organisation
from tests.support.review_media import make_review_attempt

SUPERVISOR_A = "supervisor@example.com"
INSTALL_ADMIN = "admin@example.com"


@pytest.fixture(scope="module")
def org_b(app_server):
    return make_other_organisation()


def _cookie(email: str) -> dict:
    return {"Cookie": f"{SESSION_COOKIE}={sessions.login(email, DEMO_PASSWORD)[0]}"}


def _links(viewer_id: int, attempt_id: int) -> list[str]:
    return [recording_link(viewer_id, attempt_id, "camera", asset) for asset in ("video", "poster", "sprite")] + [
        recording_link(viewer_id, attempt_id, "camera", "video", download=True),
        recording_link(viewer_id, attempt_id, "camera", "preview"), snapshot_link(viewer_id, attempt_id, 0)]


def test_media_of_another_organisation_is_not_found(app_server, org_b):
    attempt = make_review_attempt()  # of the default organisation, A
    with httpx.Client(base_url=app_server.url, timeout=30) as client:
        for email in (org_b.supervisor.email, org_b.admin.email):
            me = user_id(email)
            for link in _links(me, attempt.attempt_id):
                assert client.get(link, headers=_cookie(email)).status_code == 404, link
            # Links signed for someone of A do not work for B's user either.
            for link in _links(user_id(SUPERVISOR_A), attempt.attempt_id):
                assert client.get(link, headers=_cookie(email)).status_code == 403, link
        for email in (SUPERVISOR_A, INSTALL_ADMIN):
            video = client.get(recording_link(user_id(email), attempt.attempt_id, "camera", "video"),
                               headers=_cookie(email))
            assert video.status_code == 200 and video.content == attempt.camera_mp4.read_bytes()
        # B's attempt: A's supervisor finds nothing; the install's admin is let through (no media yet).
        response = client.get(recording_link(user_id(SUPERVISOR_A), org_b.attempt_id, "camera", "video"),
                              headers=_cookie(SUPERVISOR_A))
        assert response.status_code == 404 and response.text == "No such attempt."
        response = client.get(recording_link(user_id(INSTALL_ADMIN), org_b.attempt_id, "camera", "poster"),
                              headers=_cookie(INSTALL_ADMIN))
        assert response.status_code == 404 and response.text == "No such recording."


def test_live_viewing_of_another_organisations_attempt_is_not_found(app_server, org_b):
    live = make_live_exam()  # organisation A, publishing for real through the relay

    async def scenario():
        async with httpx.AsyncClient(base_url=app_server.url, timeout=30) as client:
            async def view(email: str, body: str, stream: str = "camera") -> httpx.Response:
                return await client.post(live.view_url(stream), content=body,
                                         headers={"Content-Type": "application/sdp", **_cookie(email)})

            async def publish(offer: str) -> str:
                response = await client.post(f"{live.publish_url}?streams=camera", content=offer, headers={
                    "Authorization": f"Bearer {live.token}", "Content-Type": "application/sdp"})
                assert response.status_code == 201, response.text
                return response.text

            publisher = Publisher({"camera": NumberedCamera()})
            await publisher.start(publish)
            refused = {}

            async def as_b(offer: str) -> str:
                for email in (org_b.proctor.email, org_b.supervisor.email, org_b.admin.email):
                    for stream in ("camera", "camera_low"):
                        refused[email, stream] = (await view(email, offer, stream)).status_code
                raise ConnectionRefusedError

            with pytest.raises(ConnectionRefusedError):
                await Viewer(decode=False).start(as_b)
            assert set(refused.values()) == {404}, refused

            for email in (INSTALL_ADMIN, live.proctors[0]):
                viewer = Viewer(decode=False)

                async def signal(offer: str, email=email) -> str:
                    response = await view(email, offer)
                    assert response.status_code == 201, response.text
                    return response.text

                await viewer.start(signal)
                assert await viewer.wait_frames(5, timeout=15), email
                await viewer.close()
            await publisher.close()

    run_async(scenario())


def test_create_admin_for_one_organisation(demo_db, capsys):
    email = f"org-admin-{id(capsys)}@example.com"
    assert main(["create-admin", "--email", email, "--generate", "--org", "cli-made-org"]) == 0
    assert "of the organisation cli-made-org" in capsys.readouterr().out
    with session_scope() as db:
        user = db.exec(select(User).where(User.email == email)).one()
        organisation = db.exec(select(Organisation).where(Organisation.slug == "cli-made-org")).one()
        assert user.role == "admin" and not user.is_install_admin and user.organisation_id == organisation.id
    assert main(["create-admin", "--email", f"x{email}", "--generate", "--org", "Not A Slug"]) == 2
    assert "slug" in capsys.readouterr().err
