"""The signed-in user, shared by every page state, and the guard every handler goes through."""

import functools
import inspect
from collections.abc import Callable, Iterable

import reflex as rx
from starlette.requests import cookie_parser

from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.auth.sessions import SESSION_COOKIE, CurrentUser, user_for_token
from proctor_app.state.locale import LocaleState


class AuthState(LocaleState):
    user_name: str = ""
    user_role: str = ""
    # What the navigation offers: the install's admins also manage organisations, settings, health.
    user_install_admin: bool = False
    _user: CurrentUser | None = None

    def _session_token(self) -> str:
        """The session cookie as the state socket's handshake carried it (HttpOnly: set by
        /api/auth/login, which then loads the next page in full, so a new socket carries it)."""
        return cookie_parser(self.router.headers.cookie).get(SESSION_COOKIE, "")

    def _signed_in_user(self) -> CurrentUser | None:
        user = user_for_token(self._session_token())
        self.user_name = user.name if user else ""
        self.user_role = user.role if user else ""
        self.user_install_admin = bool(user and user.is_install_admin)
        return user

    @rx.var
    def home_url(self) -> str:
        return HOME_BY_ROLE.get(self.user_role, "/login")


def _denied(user: CurrentUser | None, path: str):
    if user is None:
        return rx.redirect(f"/login?next={path}")
    return rx.redirect("/forbidden")


def requires(roles: Iterable[str], install_admin: bool = False) -> Callable:
    """Run the handler only for a signed-in user with one of `roles` (and, with `install_admin`,
    an admin of the whole install); others are redirected.

    The handler finds the user in `self._user` for the length of the call.
    """
    allowed = frozenset(roles)

    def wrap(handler):
        def authorize(self):
            user = self._signed_in_user()
            if user is None or user.role not in allowed or (install_admin and not user.is_install_admin):
                return _denied(user, self.router.url.path)
            self._user = user
            return None

        if inspect.iscoroutinefunction(handler):
            @functools.wraps(handler)
            async def guarded_async(self, *args, **kwargs):
                return authorize(self) or await handler(self, *args, **kwargs)
            return guarded_async

        @functools.wraps(handler)
        def guarded(self, *args, **kwargs):
            return authorize(self) or handler(self, *args, **kwargs)
        return guarded

    return wrap
