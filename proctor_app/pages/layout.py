"""The frame around every signed-in page: a top bar with the user's areas and a logout button."""

import reflex as rx

from proctor_app.components.auth_forms import logout_form
from proctor_app.components.language import language_switch, t
from proctor_app.demo import DEMO_PASSWORD, demo_mode
from proctor_app.i18n import N_
from proctor_app.state.auth import AuthState
from proctor_app.state.locale import LocaleState
from proctor_app.state.sessions import SessionsState

NAV_BY_ROLE = {
    "candidate": [(N_("My exams"), "/candidate")],
    "proctor": [("Live", "/proctor"), ("Attempts", "/attempts")],
    "supervisor": [("Attempts", "/attempts"), ("Live", "/proctor")],
    "admin": [("Users", "/admin/users"), ("Exams", "/admin/exams"), ("Attempts", "/attempts"),
              ("Live", "/proctor"), ("API keys", "/admin/api-keys"), ("Webhooks", "/admin/webhooks")],
    "install_admin": [("Organisations", "/admin/organisations"), ("Users", "/admin/users"),
                      ("Exams", "/admin/exams"), ("Attempts", "/attempts"), ("Live", "/proctor"),
                      ("Settings", "/admin/settings"), ("API keys", "/admin/api-keys"),
                      ("Webhooks", "/admin/webhooks"), ("Health", "/admin/health")],
}


def _nav_links() -> rx.Component:
    return rx.match(
        rx.cond(AuthState.user_install_admin, "install_admin", AuthState.user_role),
        *[(role, rx.el.nav(rx.hstack(*[rx.link(t(label), href=href) for label, href in links], spacing="4")))
          for role, links in NAV_BY_ROLE.items()],
        rx.fragment(),
    )


def demo_banner() -> rx.Component:
    """On every page while the server runs with PROCTOR_DEMO=1: its accounts' password is public.
    Decided when the pages are compiled, which `reflex run` does at every start with the server's
    environment (no state of its own, so page loads and events carry nothing more)."""
    if not demo_mode():
        return rx.fragment()
    return rx.box(
        rx.text(rx.text.strong(t("Demo")), t(": demo accounts with the published password {password}"
                                               " are active. Not for real exams.", password=DEMO_PASSWORD),
                size="2"),
        id="demo-banner", background="var(--amber-4)", color="var(--amber-12)",
        padding="0.4em 1.5em", width="100%", border_bottom="1px solid var(--amber-7)",
    )


# The roles as the top bar names them, translated.
ROLE_NAMES = (N_("candidate"), N_("proctor"), N_("supervisor"), N_("admin"))  # for the catalogue


def bare_frame(*children) -> rx.Component:
    """The frame of the pages without a signed-in user (sign-in, first run, not allowed)."""
    return rx.box(demo_banner(), rx.el.main(*children), width="100%")


def page_frame(*children, title: str | rx.Var[str], language=None) -> rx.Component:
    """`language`: the page offers the language switch, and this handler (no arguments) redraws
    the texts its state wrote, in the language chosen."""
    return rx.box(
        demo_banner(),
        rx.el.header(rx.hstack(
            rx.heading("Proctor", size="5"),
            _nav_links(),
            rx.spacer(),
            *([language_switch(language)] if language is not None else []),
            rx.text(AuthState.user_name, " (", LocaleState.texts.get(AuthState.user_role, AuthState.user_role),
                    ")", id="signed-in-as"),
            # Present once the page's on_load handlers have finished (its guard included).
            rx.cond(rx.State.is_hydrated, rx.el.span(id="page-loaded", hidden=True)),
            logout_form(rx.button(t("Log out"), type="submit", variant="soft", id="logout")),
            rx.button(t("Log out everywhere"), on_click=SessionsState.logout_everywhere, variant="ghost",
                      id="logout-everywhere"),
            align="center", padding="0.75em 1.5em", border_bottom="1px solid var(--gray-5)",
            width="100%", spacing="5",
        )),
        rx.el.main(rx.heading(title, size="6", margin_bottom="0.75em"), *children,
                   padding="1.5em", max_width="1200px", margin="0 auto"),
        width="100%",
    )


def pager(state, noun: str, nouns: str) -> rx.Component:
    """Previous / Next through a paged list; `state` has page, pages, total and go_to_page."""
    return rx.hstack(
        rx.button("Previous", variant="soft", disabled=state.page <= 0,
                  on_click=state.go_to_page(state.page - 1), id="page-prev"),
        rx.text("Page ", state.page + 1, " of ", state.pages, " (", state.total, " ",
                rx.cond(state.total == 1, noun, nouns), ")", id="page-info"),
        rx.button("Next", variant="soft", disabled=state.page >= state.pages - 1,
                  on_click=state.go_to_page(state.page + 1), id="page-next"),
        align="center",
    )
