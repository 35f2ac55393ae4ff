from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session, select

from proctor_app.auth.roles import ADMIN
from proctor_app.db import session_scope
from proctor_app.models import Organisation, User
from proctor_app.services import accounts, organisations
from proctor_app.services.accounts import normalise_email
from proctor_app.state.auth import AuthState, requires
from proctor_app.state.changes import apply_change


@dataclass
class UserRow:
    id: int
    name: str
    email: str
    role: str
    active: bool
    organisation_id: str
    organisation: str
    install_admin: bool


class AdminUsersState(AuthState):
    users: list[UserRow] = []
    my_user_id: int = 0
    error: str = ""
    notice: str = ""
    # Bumped after a successful create, so the form is rebuilt empty; on errors it keeps its input.
    create_form_key: int = 0
    reset_user_id: int = 0
    reset_user_email: str = ""
    # Install admins see every organisation's users and may choose and change the organisation.
    all_organisations: bool = False
    organisation_options: list[list[str]] = []
    # A page of the users whose name or email contains `search` (`?q=` on the URL sets it).
    search: str = ""
    page: int = 0
    pages: int = 1
    total: int = 0

    def _reload(self) -> None:
        self.my_user_id = self._user.id
        visible = organisations.visible_organisation_id(self._user)
        with session_scope() as db:
            slugs = {org.id: org.slug for org in db.exec(select(Organisation).order_by(Organisation.slug))}
            users, self.total = accounts.list_users(db, visible, self.search, self.page)
            self.pages = max(1, -(-self.total // accounts.USERS_PAGE_SIZE))
            if self.page >= self.pages:
                self.page = self.pages - 1
                users, self.total = accounts.list_users(db, visible, self.search, self.page)
            self.users = [UserRow(id=u.id, name=u.name, email=u.email, role=u.role, active=u.active,
                                  organisation_id=str(u.organisation_id), organisation=slugs[u.organisation_id],
                                  install_admin=u.is_install_admin)
                          for u in users]
        self.all_organisations = visible is None
        # The admin's own organisation first: it is the form's default.
        own = self._user.organisation_id
        self.organisation_options = [[str(org_id), slug] for org_id, slug in
                                     sorted(slugs.items(), key=lambda item: (item[0] != own, item[1]))
                                     if visible is None or org_id == visible]

    async def _apply(self, change: Callable[[Session], User], done: Callable[[User], str]) -> bool:
        """One account change (passwords are hashed off the event loop), described by `done`."""
        return await apply_change(self, lambda db: done(change(db)), (accounts.AccountError,))

    @requires(ADMIN)
    def on_load(self):
        self.error = self.notice = ""
        self.reset_user_id, self.reset_user_email = 0, ""
        self.search = self.router.url.query_parameters.get("q", "").strip()[:200]
        self.page = 0
        self._reload()

    @requires(ADMIN)
    def search_users(self, form: dict):
        self.search = str(form.get("search", "")).strip()[:200]
        self.page = 0
        self._reload()

    @requires(ADMIN)
    def go_to_page(self, page: int):
        self.page = max(0, min(int(page), self.pages - 1))
        self._reload()

    @requires(ADMIN)
    async def create_user(self, form: dict):
        actor = self._user.id
        organisation = str(form.get("organisation", ""))
        # The list after the change shows the new account (it may run to many pages); on a refusal
        # the page stays as it was.
        shown = self.search, self.page
        self.search, self.page = normalise_email(str(form.get("email", ""))), 0
        created = await self._apply(
            lambda db: accounts.create_user(db, actor, email=form.get("email", ""),
                                            name=form.get("name", ""), role=form.get("role", ""),
                                            password=form.get("password", ""),
                                            organisation_id=int(organisation) if organisation.isdigit() else None,
                                            install_admin=bool(form.get("install_admin"))),
            lambda user: f"Created {user.email} ({user.role}).")
        if created:
            self.create_form_key += 1
        else:
            self.search, self.page = shown

    @requires(ADMIN)
    async def set_active(self, user_id: int, active: bool):
        actor = self._user.id
        await self._apply(lambda db: accounts.set_active(db, actor, int(user_id), bool(active)),
                          lambda user: f"{user.email} is now {'active' if user.active else 'deactivated'}.")

    @requires(ADMIN)
    async def change_role(self, user_id: int, role: str):
        actor = self._user.id
        await self._apply(lambda db: accounts.change_role(db, actor, int(user_id), role),
                          lambda user: f"{user.email} is now a {user.role}.")

    @requires(ADMIN)
    async def move_user(self, user_id: int, organisation_id: str):
        actor = self._user.id
        if not str(organisation_id).isdigit():
            self.error, self.notice = "Choose an organisation.", ""
            return
        await self._apply(lambda db: accounts.move_user(db, actor, int(user_id), int(organisation_id)),
                          lambda user: f"{user.email} now belongs to organisation {user.organisation_id}; "
                                       "their sessions and assignments ended.")

    @requires(ADMIN)
    async def logout_everywhere(self, user_id: int):
        actor = self._user.id

        def log_out(db: Session) -> User:
            accounts.logout_everywhere(db, actor, int(user_id))
            return db.get(User, int(user_id))

        await self._apply(log_out, lambda user: f"{user.email} is logged out everywhere.")

    @requires(ADMIN)
    def open_reset(self, user_id: int):
        row = next((u for u in self.users if u.id == int(user_id)), None)
        if row is not None:
            self.error = ""
            self.reset_user_id, self.reset_user_email = row.id, row.email

    @requires(ADMIN)
    def close_reset(self):
        self.reset_user_id, self.reset_user_email = 0, ""

    @requires(ADMIN)
    async def reset_password(self, form: dict):
        actor, user_id = self._user.id, self.reset_user_id
        if await self._apply(lambda db: accounts.reset_password(db, actor, user_id, form.get("password", "")),
                             lambda user: f"New password set for {user.email}; their sessions were ended."):
            self.reset_user_id, self.reset_user_email = 0, ""
