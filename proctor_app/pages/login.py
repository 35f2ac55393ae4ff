import reflex as rx

from proctor_app.auth.roles import HOME_BY_ROLE
from proctor_app.components.auth_forms import login_form
from proctor_app.components.language import language_switch, t
from proctor_app.pages.layout import bare_frame
from proctor_app.state.auth import AuthState


def login_page() -> rx.Component:
    return bare_frame(_login_form())


def _login_form() -> rx.Component:
    return rx.center(
        rx.card(
            login_form(
                rx.vstack(
                    rx.hstack(rx.heading(t("Sign in"), size="6"), rx.spacer(), language_switch(),
                              width="100%", align="center"),
                    rx.input(name="email", placeholder=t("Email"), type="email", required=True,
                             id="email", width="100%", aria_label=t("Email")),
                    rx.input(name="password", placeholder=t("Password"), type="password",
                             required=True, id="password", width="100%", aria_label=t("Password")),
                    rx.button(t("Sign in"), type="submit", id="login-submit", width="100%"),
                    spacing="3", width="20em",
                ),
                fallback_error=t("Sign-in failed. Try again."),
            ),
        ),
        min_height="80vh",
    )


def forbidden_page() -> rx.Component:
    return bare_frame(_forbidden())


def _forbidden() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.heading(t("Not allowed"), size="6", id="forbidden"),
            rx.text(t("Your account does not have access to that page.")),
            rx.link(t("Go to your start page"), href=AuthState.home_url),
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
