"""A second organisation of a test's own, B, beside the default one (A): its admin, supervisor,
proctor and candidate (who sign in with the demo password), and an exam of B assigned to its
proctor and candidate, with the candidate's attempt started."""

import uuid
from dataclasses import dataclass

from proctor_app.auth.sessions import CurrentUser
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.models import Role
from proctor_app.services.organisations import ensure_organisation
from tests.support.factories import as_current, assign, make_exam, make_user, start_attempt


@dataclass(frozen=True)
class OtherOrganisation:
    organisation_id: int
    slug: str
    admin: CurrentUser
    supervisor: CurrentUser
    proctor: CurrentUser
    candidate: CurrentUser
    exam_id: int
    attempt_id: int


def make_other_organisation() -> OtherOrganisation:
    tag = uuid.uuid4().hex[:8]
    with session_scope() as db:
        organisation = ensure_organisation(db, f"org-b-{tag}", f"Organisation B {tag}")
        people = {role: make_user(db, role=role, email=f"b-{role}-{tag}@example.com", name=f"B {role} {tag}",
                                  password=DEMO_PASSWORD, organisation_id=organisation.id)
                  for role in (Role.admin, Role.supervisor, Role.proctor, Role.candidate)}
        exam = make_exam(db, title=f"B exam {tag}", organisation_id=organisation.id, recording_required=False)
        assign(db, exam, people[Role.proctor], people[Role.candidate])
        attempt = start_attempt(db, exam, people[Role.candidate])
        return OtherOrganisation(organisation.id, organisation.slug, *(as_current(people[role]) for role in (
            Role.admin, Role.supervisor, Role.proctor, Role.candidate)), exam.id, attempt.id)
