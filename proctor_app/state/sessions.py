"""The signed-in user's own sessions: "Log out everywhere" in every page's top bar."""

import reflex as rx

from proctor_app.db import session_scope
from proctor_app.models import Role
from proctor_app.services import accounts
from proctor_app.state.auth import AuthState, requires


class SessionsState(AuthState):
    @requires(list(Role))
    def logout_everywhere(self):
        """Ends this and every other session of the user (a lost laptop, a shared computer)."""
        user_id = self._user.id
        with session_scope() as db:
            accounts.logout_everywhere(db, user_id, user_id)
        self.user_name = self.user_role = ""
        return rx.redirect("/login")
