import reflex as rx

from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.state.auth import AuthState


class LoginState(AuthState):
    """/login. Signing in and out are HTTP routes (api/auth.py): they set and clear the HttpOnly
    session cookie, which no event of this socket could."""

    def on_load(self):
        if self._signed_in_user() is not None:
            return rx.redirect(HOME_BY_ROLE[self.user_role])
