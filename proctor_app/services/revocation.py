"""Taking access away at once: what deactivation, logging out everywhere, a role change and an
unassignment share (services/accounts.py and services/exam_admin.py are the entries per cause).

In the cause's transaction: upload tokens are marked revoked and assignments that no longer fit
are deleted. What lives outside the database (the relay's live sessions, the upload stores'
token caches) is told only once that transaction has committed: `notify_after_commit` hands a
`Revoked` to the listeners the app process registered (runtime.py), in the committing thread.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import event, update
from sqlmodel import Session, select

from proctor_app.models import Attempt, AttemptStatus, ExamAssignment, UploadToken, utcnow

log = logging.getLogger("proctor_app.revocation")
_PENDING = "proctor_app.revoked"


@dataclass(frozen=True)
class Revoked:
    """What a committed revocation ended."""

    # This user's live views end: all of them, or those of `attempt_ids` only.
    viewer_id: int | None = None
    attempt_ids: frozenset[int] | None = None
    # Upload tokens revoked: the upload stores forget them, and the live publications opened
    # with them end.
    token_hashes: frozenset[str] = frozenset()
    # This API key's live views end (it was revoked).
    api_key_id: int | None = None


RevokedListener = Callable[[Revoked], None]
_listeners: list[RevokedListener] = []


def on_revoked(listener: RevokedListener) -> Callable[[], None]:
    """Call `listener` after each committed revocation; returns what unregisters it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def notify_after_commit(db: Session, revoked: Revoked) -> None:
    """Hand `revoked` to the listeners once `db` commits; nothing if it rolls back."""
    pending = db.info.get(_PENDING)
    if pending is None:
        pending = db.info[_PENDING] = []
        event.listen(db, "after_commit", _deliver)
        event.listen(db, "after_rollback", _discard)
    pending.append(revoked)


def _deliver(db: Session) -> None:
    for revoked in db.info.pop(_PENDING, []):
        for listener in list(_listeners):
            try:
                listener(revoked)
            except Exception:  # the database change stands; the others must still hear of it
                log.exception("a revocation listener failed")


def _discard(db: Session) -> None:
    db.info.pop(_PENDING, None)


def open_attempt_ids(db: Session, candidate_id: int) -> list[int]:
    """The candidate's attempts in progress: the ones whose uploads a revocation stops."""
    return list(db.exec(select(Attempt.id).where(Attempt.candidate_id == candidate_id,
                                                 Attempt.status == AttemptStatus.in_progress)))


def revoke_upload_tokens(db: Session, attempt_ids: Iterable[int], except_page: str | None = None) -> frozenset[str]:
    """Mark every unrevoked upload token of these attempts revoked; returns their hashes. With
    `except_page`, only those of the other exam pages (another page took the attempt over)."""
    attempt_ids = list(attempt_ids)
    if not attempt_ids:
        return frozenset()
    live = (UploadToken.attempt_id.in_(attempt_ids), UploadToken.revoked_at.is_(None))
    if except_page is not None:
        live += (UploadToken.page_id.is_not(None), UploadToken.page_id != except_page)
    hashes = frozenset(db.exec(select(UploadToken.token_hash).where(*live)))
    if hashes:
        db.execute(update(UploadToken).where(*live).values(revoked_at=utcnow()))
    return hashes


def clear_assignments(db: Session, user_id: int) -> list[int]:
    """Delete every exam assignment of the user (its meaning depends on the role: candidates
    take the exam, proctors watch it); returns the exams'."""
    rows = list(db.exec(select(ExamAssignment).where(ExamAssignment.user_id == user_id)))
    for row in rows:
        db.delete(row)
    return sorted(row.exam_id for row in rows)


def exam_attempt_ids(db: Session, exam_id: int) -> frozenset[int]:
    return frozenset(db.exec(select(Attempt.id).where(Attempt.exam_id == exam_id)))
