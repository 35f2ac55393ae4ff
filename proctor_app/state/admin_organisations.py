"""/admin/organisations: the install's admins list organisations with their users, exams and
attempts, create them (slug, name), rename them and set the origins allowed to embed the recorder."""

from dataclasses import dataclass

from sqlmodel import Session

from proctor_app.auth.roles import ADMIN
from proctor_app.db import session_scope
from proctor_app.services import organisations
from proctor_app.state.auth import AuthState, requires
from proctor_app.state.changes import apply_change


@dataclass
class OrganisationRow:
    id: int
    slug: str
    name: str
    origins: str  # one a line, as the form edits them
    users: int
    exams: int
    attempts: int


class AdminOrganisationsState(AuthState):
    rows: list[OrganisationRow] = []
    error: str = ""
    notice: str = ""
    create_form_key: int = 0
    # Bumped after every change, so each row's form is rebuilt from what was saved.
    rows_key: int = 0

    def _reload(self) -> None:
        with session_scope() as db:
            summaries = organisations.list_organisations(db, self._user.id)
            self.rows = [OrganisationRow(id=s.organisation.id, slug=s.organisation.slug, name=s.organisation.name,
                                         origins="\n".join(s.organisation.allowed_origins), users=s.users,
                                         exams=s.exams, attempts=s.attempts) for s in summaries]
        self.rows_key += 1

    @requires(ADMIN, install_admin=True)
    def on_load(self):
        self.error = self.notice = ""
        self._reload()

    @requires(ADMIN, install_admin=True)
    async def create(self, form: dict):
        actor = self._user.id
        if await apply_change(self, lambda db: "Created " + organisations.create_organisation(
                db, actor, str(form.get("slug", "")), str(form.get("name", ""))).slug + ".",
                (organisations.OrganisationError,)):
            self.create_form_key += 1

    @requires(ADMIN, install_admin=True)
    async def save(self, form: dict):
        actor, organisation_id = self._user.id, str(form.get("organisation_id", ""))
        if not organisation_id.isdigit():
            self.error, self.notice = "No such organisation.", ""
            return

        def save(db: Session) -> str:
            organisations.rename_organisation(db, actor, int(organisation_id), str(form.get("name", "")))
            organisation = organisations.set_allowed_origins(db, actor, int(organisation_id),
                                                             str(form.get("origins", "")))
            return f"Saved {organisation.slug}."

        await apply_change(self, save, (organisations.OrganisationError,))
