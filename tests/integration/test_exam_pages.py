"""One exam page per attempt, on the server: a page asks before taking an attempt another page
holds and uses; taking it revokes the other pages' upload tokens (after the commit, the relay and
upload stores hear of it), never the same tab's (its reloads) nor the embeddable recorder's."""

from datetime import timedelta

from sqlmodel import select

from proctor_app.auth.tokens import token_hash
from proctor_app.db import session_scope
from proctor_app.models import Recording, UploadToken, utcnow
from proctor_app.services.revocation import on_revoked
from proctor_app.services.uploads import OPEN_PAGE_WINDOW, issue_upload_token, open_elsewhere
from tests.support.uploads import new_attempt

TAB, OTHER_TAB = "a" * 32, "b" * 32


def _revoked(token: str) -> bool:
    with session_scope() as db:
        return db.exec(select(UploadToken.revoked_at).where(UploadToken.token_hash == token_hash(token))).one() \
            is not None


def test_a_page_is_asked_while_another_holds_the_attempt_and_taking_it_stops_the_other(demo_db):
    heard = []
    stop_listening = on_revoked(heard.append)
    try:
        with session_scope() as db:
            attempt = new_attempt(db)
            sdk = issue_upload_token(db, attempt)
            first = issue_upload_token(db, attempt, page_id=TAB)
            reloaded = issue_upload_token(db, attempt, page_id=TAB)  # the same tab, reloaded
            assert not open_elsewhere(db, attempt, TAB)
            assert open_elsewhere(db, attempt, OTHER_TAB)
            later = utcnow() + OPEN_PAGE_WINDOW + timedelta(seconds=1)
            assert not open_elsewhere(db, attempt, OTHER_TAB, now=later)  # gone quiet: not waited for
            # ... unless it still uploads.
            for recording in db.exec(select(Recording).where(Recording.attempt_id == attempt.id)):
                recording.ended_at = later - timedelta(seconds=5)
                db.add(recording)
            db.flush()
            assert open_elsewhere(db, attempt, OTHER_TAB, now=later)
            assert heard == []
            taken = issue_upload_token(db, attempt, page_id=OTHER_TAB)
            assert not open_elsewhere(db, attempt, OTHER_TAB)
            assert heard == []  # not before the commit
        assert heard and heard[-1].token_hashes == {token_hash(first.token), token_hash(reloaded.token)}
        assert _revoked(first.token) and _revoked(reloaded.token)
        assert not _revoked(taken.token) and not _revoked(sdk.token)
    finally:
        stop_listening()
