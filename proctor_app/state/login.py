import reflex as rx

from proctor_app.auth.redirects import next_or_home
from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.state.auth import AuthState


class LoginState(AuthState):
    """/login. Signing in and out are HTTP routes (api/auth.py): they set and clear the HttpOnly
    session cookie, which no event of this socket could. The form then loads this page again, and
    here a signed-in user goes on to `next`."""

    def on_load(self):
        if self._signed_in_user() is not None:
            target = self.router.url.query_parameters.get("next", "")
            # Only same-site paths, so the login page cannot send anyone elsewhere.
            return rx.redirect(next_or_home(target, HOME_BY_ROLE[self.user_role]))
