"""/admin/api-keys: create (the key is shown once), list, revoke and rotate API keys. Install
admins manage every organisation's keys (and name the organisation when creating one); an
organisation's admins their own."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from proctor_app.auth.roles import ADMIN
from proctor_app.db import session_scope
from proctor_app.models import Organisation, utcnow
from proctor_app.services import api_keys, organisations
from proctor_app.services.review import iso_time
from proctor_app.state.auth import AuthState, requires
from proctor_app.state.changes import apply_change


@dataclass
class KeyRow:
    id: int
    prefix: str
    organisation: str
    label: str
    scopes: str
    last_used: str
    expires: str
    state: str


def _state(key, now) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "rotated" if key.replaced_by else "active"


class AdminApiKeysState(AuthState):
    keys: list[KeyRow] = []
    all_organisations: bool = False
    scope_names: list[str] = list(api_keys.SCOPES)
    # The key just created or rotated: shown once, gone with the next action or reload.
    new_key: str = ""
    error: str = ""
    notice: str = ""
    create_form_key: int = 0

    def _reload(self) -> None:
        now = utcnow()
        with session_scope() as db:
            managed = organisations.managed_organisation_id(db, self._user.id)
            rows = api_keys.keys_of(db, managed)
        self.all_organisations = managed is None
        self.keys = [KeyRow(id=key.id, prefix=key.prefix, organisation=org.slug, label=key.label,
                            scopes=" ".join(key.scopes), last_used=iso_time(key.last_used_at),
                            expires=iso_time(key.expires_at), state=_state(key, now))
                     for key, org in rows]

    async def _apply(self, change: Callable[[Session, int | None], str]) -> bool:
        """One key change, given the organisation the admin manages (None: all)."""
        self.new_key = ""
        user_id = self._user.id
        return await apply_change(self, lambda db: change(db, organisations.managed_organisation_id(db, user_id)),
                                  (api_keys.ApiKeyError, organisations.OrganisationError))

    @requires(ADMIN)
    def on_load(self):
        self.error = self.notice = self.new_key = ""
        self._reload()

    @requires(ADMIN)
    async def create_key(self, form: dict):
        actor = self._user.id
        scopes = [scope for scope in api_keys.SCOPES if form.get(f"scope:{scope}")]
        days = str(form.get("expires_days", "")).strip()

        new_key: list[str] = []

        def create(db: Session, managed: int | None) -> str:
            if managed is None:
                organisation = organisations.ensure_organisation(db, str(form.get("organisation", "")))
            else:
                organisation = db.get(Organisation, managed)
            if days and not (days.isdigit() and 0 < int(days) <= 3650):
                raise api_keys.ApiKeyError("Expiry is a number of days from 1 to 3650, or empty for none.")
            expires = utcnow() + timedelta(days=int(days)) if days else None
            key, raw = api_keys.create_key(db, organisation.id, str(form.get("label", "")), scopes,
                                           expires, created_by=actor)
            new_key.append(raw)
            return f"Created key {key.prefix} for {organisation.slug}. Copy it now: it is not shown again."

        if await self._apply(create):
            self.new_key = new_key[0]
            self.create_form_key += 1

    @requires(ADMIN)
    async def revoke(self, key_id: int):
        actor = self._user.id
        await self._apply(
            lambda db, managed: f"Revoked {api_keys.revoke_key(db, int(key_id), managed, actor).prefix}.")

    @requires(ADMIN)
    async def rotate(self, key_id: int):
        actor = self._user.id

        new_key: list[str] = []

        def rotate(db: Session, managed: int | None) -> str:
            key, raw = api_keys.rotate_key(db, int(key_id), managed, actor)
            new_key.append(raw)
            return (f"New key {key.prefix}; the old one works for {api_keys.ROTATION_OVERLAP} more. "
                    "Copy the new key now: it is not shown again.")

        if await self._apply(rotate):
            self.new_key = new_key[0]
