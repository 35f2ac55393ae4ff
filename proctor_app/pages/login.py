import reflex as rx

from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.components.auth_forms import login_form
from proctor_app.pages.layout import bare_frame
from proctor_app.state.auth import AuthState


def login_page() -> rx.Component:
    return bare_frame(_login_form())


def _login_form() -> rx.Component:
    return rx.center(
        rx.card(
            login_form(
                rx.vstack(
                    rx.heading("Sign in", size="6"),
                    rx.input(name="email", placeholder="Email", type="email", required=True,
                             id="email", width="100%"),
                    rx.input(name="password", placeholder="Password", type="password",
                             required=True, id="password", width="100%"),
                    rx.button("Sign in", type="submit", id="login-submit", width="100%"),
                    spacing="3", width="20em",
                ),
            ),
        ),
        min_height="80vh",
    )


def forbidden_page() -> rx.Component:
    return bare_frame(_forbidden())


def _forbidden() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.heading("Not allowed", size="6", id="forbidden"),
            rx.text("Your account does not have access to that page."),
            rx.link("Go to your start page", href=AuthState.home_url),
            align="center",
        ),
        min_height="60vh",
    )


class IndexState(AuthState):
    def on_load(self):
        user = self._signed_in_user()
        return rx.redirect(HOME_BY_ROLE[user.role] if user else "/login")


def index_page() -> rx.Component:
    return rx.center(rx.spinner(), min_height="60vh")
