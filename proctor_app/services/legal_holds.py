"""Legal holds: an attempt on hold keeps its media whatever its retention says. One rule for
every page that places or releases one: a supervisor or admin who may review the attempt, with a
reason, audited."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from proctor_app.auth.roles import LEGAL_HOLD
from proctor_app.auth.sessions import CurrentUser
from proctor_app.models import Attempt, AuditLog, Exam, User
from proctor_app.services.review import may_review

MAX_HOLD_REASON = 200


class LegalHoldError(ValueError):
    """A hold change that is not allowed; the message is shown to the user."""


def change_legal_hold(db: Session, attempt_id: int, on: bool, reason: str, user: CurrentUser) -> Attempt:
    """Place (`on`) or release the legal hold of an attempt the user may review, with a reason."""
    if user.role not in LEGAL_HOLD:
        raise LegalHoldError("Only supervisors and admins may place or release a legal hold.")
    reason = reason.strip()
    if not reason:
        raise LegalHoldError("Give a short reason for the legal hold change.")
    if len(reason) > MAX_HOLD_REASON:
        raise LegalHoldError(f"The reason is limited to {MAX_HOLD_REASON} characters.")
    attempt = db.exec(select(Attempt).where(Attempt.id == attempt_id).with_for_update()
                      .execution_options(populate_existing=True)).first()
    if attempt is None or not may_review(db, user, attempt):
        raise LegalHoldError("No such attempt.")
    if on and attempt.media_expired_at is not None:
        raise LegalHoldError(f"The media of this attempt was already deleted on "
                             f"{attempt.media_expired_at:%Y-%m-%d}; there is nothing left to hold.")
    if attempt.legal_hold != on:
        attempt.legal_hold = on
        db.add(attempt)
        db.add(AuditLog(user_id=user.id, action="legal_hold_set" if on else "legal_hold_released",
                        target=f"attempt:{attempt_id}", data={"reason": reason}))
        db.flush()
    return attempt


@dataclass(frozen=True)
class HeldAttempt:
    attempt_id: int
    exam_title: str
    candidate_email: str
    ended_at: datetime | None


def legal_holds(db: Session) -> list[HeldAttempt]:
    """The attempts retention keeps because of a legal hold."""
    rows = db.exec(select(Attempt.id, Exam.title, User.email, Attempt.ended_at)
                   .join(Exam, Exam.id == Attempt.exam_id).join(User, User.id == Attempt.candidate_id)
                   .where(Attempt.legal_hold.is_(True)).order_by(Attempt.id)).all()
    return [HeldAttempt(*row) for row in rows]
