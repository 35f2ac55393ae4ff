"""Which role may open which area. Pages, state handlers and HTTP routes all ask here."""

from proctor_app.models import Role

CANDIDATE = frozenset({Role.candidate})
STAFF_REVIEW = frozenset({Role.supervisor, Role.proctor, Role.admin})
LIVE_VIEW = frozenset({Role.proctor, Role.supervisor, Role.admin})
ADMIN = frozenset({Role.admin})
# Who may place an attempt on legal hold (retention keeps its media) and release it.
LEGAL_HOLD = frozenset({Role.supervisor, Role.admin})
# Who may download an attempt's evidence bundle (signed recordings, events, snapshots).
EVIDENCE = frozenset({Role.supervisor, Role.admin})

HOME_BY_ROLE = {
    Role.candidate: "/candidate",
    Role.proctor: "/proctor",
    Role.supervisor: "/attempts",
    Role.admin: "/admin/users",
}
