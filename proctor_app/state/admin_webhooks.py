"""/admin/webhooks: the endpoints and the delivery log of the organisations an admin manages (all
of them for install admins), redelivery, and (install admins) the install's operator.alert
endpoint."""

from dataclasses import dataclass

from proctor_app.auth.roles import ADMIN
from proctor_app.db import session_scope
from proctor_app.models import utcnow
from proctor_app.services import organisations
from proctor_app.services.review import iso_time
from proctor_app.services.webhooks import admin, endpoints
from proctor_app.state.auth import AuthState, requires


@dataclass
class EndpointRow:
    id: str
    organisation: str
    url: str
    events: str
    state: str


@dataclass
class LogRow:
    key: str
    delivery_id: int
    at: str
    organisation: str
    event_type: str
    number: int
    status_code: str
    latency: str
    excerpt: str
    delivery_status: str


class AdminWebhooksState(AuthState):
    endpoints: list[EndpointRow] = []
    log: list[LogRow] = []
    install_admin: bool = False
    install_url: str = ""
    # The install endpoint's secret, when just made: shown once.
    new_secret: str = ""
    error: str = ""
    notice: str = ""

    def _reload(self) -> None:
        with session_scope() as db:
            managed = organisations.managed_organisation_id(db, self._user.id)
            rows = admin.endpoints_for(db, managed)
            lines = admin.delivery_log(db, managed)
            own = admin.install_endpoint(db) if managed is None else None
        self.install_admin = managed is None
        self.install_url = own.url if own else ""
        self.endpoints = [EndpointRow(e.public_id, slug, e.url, " ".join(e.events),
                                      "enabled" if e.enabled else e.disabled_reason or "disabled")
                          for e, slug in rows]
        self.log = [LogRow(f"{line.delivery_id}-{line.number}", line.delivery_id, iso_time(line.at),
                           line.organisation, line.event_type, line.number,
                           str(line.status_code) if line.status_code is not None else "-",
                           f"{line.latency_ms:.0f} ms", line.excerpt, line.delivery_status) for line in lines]

    @requires(ADMIN)
    def on_load(self):
        self.error = self.notice = self.new_secret = ""
        self._reload()

    @requires(ADMIN)
    def refresh(self):
        self._reload()

    @requires(ADMIN)
    def redeliver(self, delivery_id: int):
        with session_scope() as db:
            managed = organisations.managed_organisation_id(db, self._user.id)
            done = admin.redeliver_visible(db, managed, int(delivery_id), utcnow())
        self.error, self.notice = ("", "Queued again (same webhook-id).") if done else ("No such delivery.", "")
        self._reload()

    @requires(ADMIN)
    def save_install_endpoint(self, form: dict):
        self.new_secret = ""
        with session_scope() as db:
            if organisations.managed_organisation_id(db, self._user.id) is not None:
                self.error, self.notice = "Only install admins set the install's endpoint.", ""
                return
            had = admin.install_endpoint(db) is not None
            try:
                endpoint = admin.set_install_endpoint(db, str(form.get("url", "")))
            except endpoints.EndpointError as exc:
                self.error, self.notice = str(exc), ""
                return
            if endpoint is not None and not had:
                self.new_secret = endpoint.secret
        self.error, self.notice = "", "Saved." if endpoint else "Removed."
        self._reload()
