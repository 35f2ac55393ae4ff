import reflex as rx

from proctor_app.pages.layout import bare_frame
from proctor_app.state.setup import SetupState


def setup_page() -> rx.Component:
    return bare_frame(
        rx.center(
            rx.card(
                rx.form(
                    rx.vstack(
                        rx.heading("First run: create the administrator", size="6"),
                        rx.text("Enter the one-time setup code the server printed in its log at "
                                "start-up.", size="2"),
                        rx.input(name="code", placeholder="Setup code", required=True, id="setup-code",
                                 width="100%", auto_complete="off"),
                        rx.input(name="email", placeholder="Email", type="email", required=True,
                                 id="setup-email", width="100%"),
                        rx.input(name="name", placeholder="Name", required=True, id="setup-name",
                                 width="100%"),
                        rx.input(name="password", placeholder="Password", type="password", required=True,
                                 id="setup-password", width="100%", auto_complete="new-password"),
                        rx.input(name="password_again", placeholder="Password again", type="password",
                                 required=True, id="setup-password-again", width="100%",
                                 auto_complete="new-password"),
                        rx.cond(SetupState.error != "",
                                rx.callout(SetupState.error, color_scheme="red", id="setup-error")),
                        rx.button("Create administrator", type="submit", id="setup-submit", width="100%"),
                        rx.cond(rx.State.is_hydrated, rx.el.span(id="page-loaded", hidden=True)),
                        spacing="3", width="24em",
                    ),
                    on_submit=SetupState.submit,
                ),
            ),
            min_height="80vh",
        ),
    )
