"""What the storage folder holds, by month and by exam, for the settings page's overview."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlmodel import Session, select

from proctor_app.media.storage import Storage, storage
from proctor_app.media.storage.layout import attempt_of_path
from proctor_app.models import Attempt, Exam

NOT_AN_ATTEMPT = "other files"


@dataclass(frozen=True)
class StoredFile:
    path: str
    size: int
    month: str  # "YYYY-MM" of the attempt's start, or NOT_AN_ATTEMPT
    attempt_id: int | None


def stored_files(files_of: Storage = storage) -> Iterator[StoredFile]:
    """Every file in the storage folder, with the month and attempt its path says it belongs to."""
    for relative, size in files_of.files_under(""):
        owner = attempt_of_path(relative)
        if owner:
            yield StoredFile(relative, size, *owner)
        else:
            yield StoredFile(relative, size, NOT_AN_ATTEMPT, None)


def usage_by_month(files: Iterable[StoredFile]) -> dict[str, int]:
    usage: dict[str, int] = {}
    for f in files:
        usage[f.month] = usage.get(f.month, 0) + f.size
    return dict(sorted(usage.items()))


def usage_by_exam(db: Session, files: Iterable[StoredFile]) -> dict[str, int]:
    """Bytes per exam title (exams sharing a title are told apart by their id), largest first."""
    files = list(files)
    attempt_ids = {f.attempt_id for f in files if f.attempt_id is not None}
    exam_of: dict[int, tuple[int, str]] = {}
    if attempt_ids:
        exam_of = {attempt_id: (exam_id, title) for attempt_id, exam_id, title in db.exec(
            select(Attempt.id, Exam.id, Exam.title).join(Exam, Exam.id == Attempt.exam_id)
            .where(Attempt.id.in_(attempt_ids)))}
    titles: dict[str, set[int]] = {}
    for exam_id, title in exam_of.values():
        titles.setdefault(title, set()).add(exam_id)
    usage: dict[str, int] = {}
    for f in files:
        exam = exam_of.get(f.attempt_id) if f.attempt_id is not None else None
        if exam is None:
            label = NOT_AN_ATTEMPT
        else:
            label = exam[1] if len(titles[exam[1]]) == 1 else f"{exam[1]} (#{exam[0]})"
        usage[label] = usage.get(label, 0) + f.size
    return dict(sorted(usage.items(), key=lambda kv: -kv[1]))
