"""Taking access away: deactivation, logging out everywhere, a role change and an unassignment
end login sessions, live views and publications, upload tokens and assignments that no longer
fit, with audit rows.

Most tests wire this process as the app process is (runtime.apply_revocations on a relay, an
upload store and a real ingest process of their own), so what a revocation ends is seen at once
(well under the token cache's revalidation). The last ones go through the running app server,
which hears of a revocation made in another process only by revalidating its cached tokens.
"""

import asyncio
import hashlib
import time

import pytest
from sqlmodel import select

from proctor_app import runtime
from proctor_app.auth import sessions
from proctor_app.auth.tokens import token_hash
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.media.ingest.checks import ChunkUpload
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.processes import IngestPool
from proctor_app.media.ingest.store import UploadStore
from proctor_app.media.ingest.tokens import REVALIDATE_AFTER_S
from proctor_app.media.live.relay import LiveRelay
from proctor_app.media.live.status import LiveStatus
from proctor_app.models import AuditLog, Exam, ExamAssignment, Role, UploadToken, User
from proctor_app.services import accounts, api_keys, exam_admin, uploads
from proctor_app.services.live_views import LiveViewer
from proctor_app.services.revocation import on_revoked
from tests.support.factories import assign, user_id
from tests.support.live_clients import NumberedCamera, Publisher, Viewer, eventually, run_async
from tests.support.live_exams import LiveExam, make_live_exam
from tests.support.polling import wait_for
from tests.support.uploads import MIME, chunk_headers, chunk_url, new_attempt

# What "at once" means here: far below REVALIDATE_AFTER_S, so a cache that was not told of the
# revocation cannot pass for one that was.
AT_ONCE_S = 3.0


def chunk(attempt_id: int, seq: int) -> ChunkUpload:
    body = f"chunk {seq} of attempt {attempt_id}".encode() * 50
    now = int(time.time() * 1000)
    return ChunkUpload(attempt_id=attempt_id, stream="camera", segment=0, seq=seq, body=body,
                       sha256=hashlib.sha256(body).hexdigest(), start_ms=str(now - 3000),
                       end_ms=str(now), mime_type=MIME, meta=None)


class App:
    """This process wired as the app process: a relay, an upload store, one ingest process, and
    the revocation listener runtime.py gives the app."""

    def __init__(self, monkeypatch):
        self.relay = LiveRelay(offline_after_s=lambda: 1.5, on_transition=self._transition)
        self.store = UploadStore(runtime.settings)
        self.pool = IngestPool(1, runtime.INGEST_COMMAND)
        monkeypatch.setattr(runtime, "relay", self.relay)
        monkeypatch.setattr(runtime, "upload_store", self.store)
        monkeypatch.setattr(runtime, "ingest_pool", self.pool)
        self.peers = []

    async def _transition(self, *_):
        pass

    async def __aenter__(self):
        await self.pool.start()
        self._stop_listening = on_revoked(runtime.apply_revocations(asyncio.get_running_loop()))
        return self

    async def __aexit__(self, *_):
        self._stop_listening()
        for peer in self.peers:
            await peer.close()
        await self.relay.close()
        await self.pool.close()

    async def publish(self, live: LiveExam, attempt_id: int | None = None, token: str | None = None):
        """A candidate publishing its camera, as api/live.py opens it (owner: the token)."""
        attempt_id, token = attempt_id or live.attempt_id, token or live.token
        publisher = Publisher({"camera": NumberedCamera(width=320, height=240)})
        self.peers.append(publisher)

        async def signal(offer):
            return (await self.relay.publish(attempt_id, f"token:{token_hash(token)}", offer, ["camera"]))[1]

        await publisher.start(signal)
        assert await eventually(lambda: self.relay.snapshot(attempt_id).status == LiveStatus.live, 10)

    async def view(self, attempt_id: int, email: str | None = None, api_key_id: int | None = None) -> Viewer:
        """A proctor (or an integrator's API key) watching, as api/live.py opens it (owner: the
        user, or the key)."""
        viewer = Viewer()
        self.peers.append(viewer)
        owner = LiveViewer(user_id=user_id(email)).owner if email else LiveViewer(api_key_id=api_key_id).owner

        async def signal(offer):
            return (await self.relay.view(attempt_id, "camera", owner, offer))[1]

        await viewer.start(signal)
        assert await viewer.wait_frames(3, timeout=10)
        return viewer

    def viewers(self, attempt_id: int) -> int:
        return self.relay.viewer_count(attempt_id, "camera")


def in_app(monkeypatch, scenario) -> None:
    async def run():
        async with App(monkeypatch) as app:
            await scenario(app)

    run_async(run())


def change(action) -> asyncio.Future:
    """An admin's change, committed in a worker thread as a page handler would."""
    def run():
        with session_scope() as db:
            return action(db)

    return asyncio.to_thread(run)


def sign_in(email: str) -> str:
    return sessions.login(email, DEMO_PASSWORD)[0]


def audit(action: str, target_id: int) -> list[dict]:
    with session_scope() as db:
        return [row.data for row in db.exec(select(AuditLog).where(
            AuditLog.action == action, AuditLog.target == f"user:{target_id}"))]


def assignments(user: int) -> list[int]:
    with session_scope() as db:
        return sorted(db.exec(select(ExamAssignment.exam_id).where(ExamAssignment.user_id == user)))


def revoked_tokens(attempt_id: int) -> list[bool]:
    with session_scope() as db:
        return [row.revoked_at is not None for row in db.exec(
            select(UploadToken).where(UploadToken.attempt_id == attempt_id))]


async def refused_with(call, code: str, timeout: float = AT_ONCE_S) -> bool:
    """Whether `call()` (sync or async) raises IngestError `code` within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = call()
            if asyncio.iscoroutine(result):
                await result
        except IngestError as exc:
            if exc.code == code:
                return True
        await asyncio.sleep(0.1)
    return False


def test_a_deactivated_candidate_stops_uploading_and_publishing_at_once(monkeypatch, admin_id):
    live = make_live_exam()
    candidate = user_id(live.candidate)
    session = sign_in(live.candidate)

    async def scenario(app: App):
        # Both caches hold the token: the ingest process's and this process's.
        assert (await app.pool.store_chunk(live.token, chunk(live.attempt_id, 0))).status == "stored"
        app.store.authorize(live.token, live.attempt_id, "camera")
        await app.publish(live)
        watcher = await app.view(live.attempt_id, live.proctors[0])

        await change(lambda db: accounts.set_active(db, admin_id, candidate, False))
        assert await refused_with(lambda: app.pool.store_chunk(live.token, chunk(live.attempt_id, 1)),
                                  "token_revoked")
        assert await refused_with(lambda: app.store.authorize(live.token, live.attempt_id, "camera"),
                                  "token_revoked")
        # The live publication ends as when the candidate leaves; the proctor stays attached.
        assert await eventually(lambda: app.relay.snapshot(live.attempt_id).status == LiveStatus.offline,
                                AT_ONCE_S)
        assert app.viewers(live.attempt_id) == 1 and watcher.pc.connectionState == "connected"

    in_app(monkeypatch, scenario)
    assert sessions.user_for_token(session) is None
    assert revoked_tokens(live.attempt_id) == [True]
    assert audit("user_deactivated", candidate) == [
        {"email": live.candidate, "sessions_revoked": 1, "upload_tokens_revoked": 1}]
    # Access is what changed, not the exam: the candidate stays assigned, reactivation restores it.
    assert live.exam_id in assignments(candidate)


def test_a_deactivated_proctor_stops_watching_at_once(monkeypatch, admin_id):
    live = make_live_exam()
    proctor = user_id(live.proctors[0])
    session = sign_in(live.proctors[0])

    async def scenario(app: App):
        await app.publish(live)
        await app.view(live.attempt_id, live.proctors[0])
        colleague = await app.view(live.attempt_id, live.proctors[1])
        assert app.viewers(live.attempt_id) == 2

        await change(lambda db: accounts.set_active(db, admin_id, proctor, False))
        assert await eventually(lambda: app.viewers(live.attempt_id) == 1, AT_ONCE_S)
        # The other proctor and the candidate go on.
        frames = colleague.count
        assert await colleague.wait_frames(frames + 10, timeout=5)
        assert app.relay.snapshot(live.attempt_id).status == LiveStatus.live

    in_app(monkeypatch, scenario)
    assert sessions.user_for_token(session) is None
    assert audit("user_deactivated", proctor) == [
        {"email": live.proctors[0], "sessions_revoked": 1, "upload_tokens_revoked": 0}]


def test_an_unassigned_proctor_stops_watching_that_exam_only(monkeypatch, admin_id):
    live, other = make_live_exam(), make_live_exam()
    proctor = user_id(live.proctors[0])
    with session_scope() as db:
        assign(db, other.exam_id, proctor)
    session = sign_in(live.proctors[0])

    async def scenario(app: App):
        await app.publish(live)
        await app.publish(other)
        await app.view(live.attempt_id, live.proctors[0])
        elsewhere = await app.view(other.attempt_id, live.proctors[0])

        keep = [user_id(live.candidate), user_id(live.proctors[1])]
        await change(lambda db: exam_admin.set_assignments(db, admin_id, live.exam_id, keep))
        assert await eventually(lambda: app.viewers(live.attempt_id) == 0, AT_ONCE_S)
        frames = elsewhere.count
        assert await elsewhere.wait_frames(frames + 10, timeout=5)
        assert app.viewers(other.attempt_id) == 1

    in_app(monkeypatch, scenario)
    # Still signed in, still watching the exam it is assigned to.
    assert sessions.user_for_token(session) is not None
    assert assignments(proctor) == [other.exam_id]


def test_a_proctor_made_candidate_loses_views_sessions_and_proctor_assignments(monkeypatch, admin_id):
    live = make_live_exam()
    proctor = user_id(live.proctors[0])
    session = sign_in(live.proctors[0])

    async def scenario(app: App):
        await app.publish(live)
        await app.view(live.attempt_id, live.proctors[0])
        await change(lambda db: accounts.change_role(db, admin_id, proctor, Role.candidate))
        assert await eventually(lambda: app.viewers(live.attempt_id) == 0, AT_ONCE_S)

    in_app(monkeypatch, scenario)
    assert sessions.user_for_token(session) is None
    # Assigned as a proctor, it would now be a candidate of the exam it watched.
    assert assignments(proctor) == []
    assert audit("role_changed", proctor) == [
        {"email": live.proctors[0], "old": "proctor", "new": "candidate", "sessions_revoked": 1,
         "upload_tokens_revoked": 0, "assignments_cleared": [live.exam_id]}]


def test_a_candidate_made_proctor_stops_uploading_and_is_no_proctor_of_its_exam(monkeypatch, admin_id):
    live = make_live_exam()
    candidate = user_id(live.candidate)

    async def scenario(app: App):
        assert (await app.pool.store_chunk(live.token, chunk(live.attempt_id, 0))).status == "stored"
        await app.publish(live)
        await change(lambda db: accounts.change_role(db, admin_id, candidate, Role.proctor))
        assert await refused_with(lambda: app.pool.store_chunk(live.token, chunk(live.attempt_id, 1)),
                                  "token_revoked")
        assert await eventually(lambda: app.relay.snapshot(live.attempt_id).status == LiveStatus.offline,
                                AT_ONCE_S)

    in_app(monkeypatch, scenario)
    assert assignments(candidate) == [] and revoked_tokens(live.attempt_id) == [True]
    [row] = audit("role_changed", candidate)
    assert (row["upload_tokens_revoked"], row["assignments_cleared"]) == (1, [live.exam_id])


def test_a_revoked_api_keys_live_views_end_at_once(monkeypatch, demo_db):
    live = make_live_exam()
    with session_scope() as db:
        organisation_id = db.get(Exam, live.exam_id).organisation_id
        key_id = api_keys.create_key(db, organisation_id, "live viewer", ["sessions:read"])[0].id

    async def scenario(app: App):
        await app.publish(live)
        await app.view(live.attempt_id, api_key_id=key_id)
        proctor = await app.view(live.attempt_id, live.proctors[0])
        await change(lambda db: api_keys.revoke_key(db, key_id, None))
        assert await eventually(lambda: app.viewers(live.attempt_id) == 1, AT_ONCE_S)
        frames = proctor.count
        assert await proctor.wait_frames(frames + 10, timeout=5)

    in_app(monkeypatch, scenario)


def test_logging_out_everywhere_ends_every_session_and_live_view(monkeypatch):
    live = make_live_exam()
    proctor = user_id(live.proctors[0])
    laptop, phone = sign_in(live.proctors[0]), sign_in(live.proctors[0])
    colleague = sign_in(live.proctors[1])

    async def scenario(app: App):
        await app.publish(live)
        await app.view(live.attempt_id, live.proctors[0])
        await app.view(live.attempt_id, live.proctors[1])
        ended = await change(lambda db: accounts.logout_everywhere(db, proctor, proctor))
        assert ended == 2
        assert await eventually(lambda: app.viewers(live.attempt_id) == 1, AT_ONCE_S)

    in_app(monkeypatch, scenario)
    assert sessions.user_for_token(laptop) is None and sessions.user_for_token(phone) is None
    assert sessions.user_for_token(colleague) is not None
    assert live.exam_id in assignments(proctor)  # same role: the assignments still fit
    assert audit("sessions_revoked", proctor) == [{"email": live.proctors[0], "sessions_revoked": 2}]


def test_a_change_that_rolls_back_revokes_nothing(monkeypatch, admin_id):
    live = make_live_exam()
    proctor = user_id(live.proctors[0])
    heard = []
    stop = on_revoked(heard.append)
    try:
        with pytest.raises(RuntimeError), session_scope() as db:
            accounts.set_active(db, admin_id, proctor, False)
            raise RuntimeError("the page handler failed after the change")
        with session_scope() as db:
            accounts.logout_everywhere(db, proctor, proctor)
    finally:
        stop()
    assert [r.viewer_id for r in heard] == [proctor]  # only the committed one
    with session_scope() as db:
        assert db.get(User, proctor).active
    assert audit("user_deactivated", proctor) == []


def test_the_running_server_refuses_a_token_revoked_by_another_process(client, admin_id):
    """Revoked here, in the test process: the server's caches hear of it by revalidating."""
    with session_scope() as db:
        attempt = new_attempt(db)
        grant = uploads.issue_upload_token(db, attempt)
        candidate = attempt.candidate_id
    body = b"x" * 1000
    assert client.put(chunk_url(grant.attempt_id, 0), content=body,
                      headers=chunk_headers(body, grant.token, 0)).status_code == 201
    with session_scope() as db:
        accounts.set_active(db, admin_id, candidate, False)

    seqs = iter(range(1, 1000))

    def refused():
        seq = next(seqs)
        answer = client.put(chunk_url(grant.attempt_id, seq), content=body,
                            headers=chunk_headers(body, grant.token, seq))
        return answer if answer.status_code != 201 else None

    answer = wait_for(refused, timeout=REVALIDATE_AFTER_S + 5, what="the revoked token refused")
    assert answer.status_code == 403
    assert answer.json()["error"] == "token_revoked"
    events = client.post(f"/api/attempts/{grant.attempt_id}/events", json={"events": []},
                         headers={"Authorization": f"Bearer {grant.token}"})
    assert (events.status_code, events.json()["error"]) == (403, "token_revoked")


def test_logging_out_an_unknown_user_is_refused(admin_id):
    with pytest.raises(accounts.AccountError, match="No such user"), session_scope() as db:
        accounts.logout_everywhere(db, admin_id, 10**9)
