import reflex as rx

from proctor_app.auth import sessions
from proctor_app.auth.redirects import next_or_home
from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.state.auth import AuthState


class LoginState(AuthState):
    error: str = ""

    def on_load(self):
        self.error = ""
        if self._signed_in_user() is not None:
            return rx.redirect(HOME_BY_ROLE[self.user_role])

    def submit(self, form: dict):
        try:
            token, user = sessions.login(form.get("email", ""), form.get("password", ""))
        except sessions.LoginError as exc:
            self.error = str(exc)
            return
        # A new token at every login: a session fixed before login is never reused.
        sessions.logout(self.session_token)
        self.session_token = token
        self.user_name, self.user_role = user.name, user.role
        target = self.router.url.query_parameters.get("next", "")
        # Only same-site paths, so the login page cannot send anyone elsewhere.
        return rx.redirect(next_or_home(target, HOME_BY_ROLE[user.role]))

    def logout(self):
        sessions.logout(self.session_token)
        self.session_token = ""
        self.user_name = self.user_role = ""
        return rx.redirect("/login")
