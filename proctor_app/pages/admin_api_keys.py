import reflex as rx

from proctor_app.components.local_time import local_time_or
from proctor_app.pages.layout import page_frame
from proctor_app.services.api_keys import SCOPES
from proctor_app.state.admin_api_keys import AdminApiKeysState, KeyRow


def _messages() -> rx.Component:
    return rx.fragment(
        rx.cond(AdminApiKeysState.error != "",
                rx.callout(AdminApiKeysState.error, color_scheme="red", id="keys-error", margin_bottom="1em")),
        rx.cond(AdminApiKeysState.notice != "",
                rx.callout(AdminApiKeysState.notice, color_scheme="green", id="keys-notice", margin_bottom="1em")),
        rx.cond(AdminApiKeysState.new_key != "",
                rx.card(rx.text("The new key (shown only now):", size="2"),
                        rx.code(AdminApiKeysState.new_key, id="new-key"), margin_bottom="1em")),
    )


def _create_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("New API key", size="4"),
                rx.hstack(
                    rx.cond(AdminApiKeysState.all_organisations,
                            rx.input(name="organisation", placeholder="Organisation slug (created if new)",
                                     id="new-key-organisation", width="18em")),
                    rx.input(name="label", placeholder="Label, e.g. Moodle production", id="new-key-label",
                             width="18em"),
                    rx.input(name="expires_days", placeholder="Expires after days (empty: never)",
                             id="new-key-expires", width="16em"),
                    spacing="2", align="center", wrap="wrap",
                ),
                rx.hstack(*[rx.el.label(rx.el.input(type="checkbox", name=f"scope:{scope}", default_checked=True,
                                                    id=f"new-key-scope-{scope.replace(':', '-')}"), " ", scope)
                            for scope in SCOPES], spacing="4", wrap="wrap"),
                rx.button("Create key", type="submit", id="create-key"),
            ),
            on_submit=AdminApiKeysState.create_key,
            key=AdminApiKeysState.create_form_key,
        ),
        margin_bottom="1.5em",
    )


def _key_row(key: KeyRow) -> rx.Component:
    usable = (key.state == "active") | (key.state == "rotated")
    return rx.table.row(
        rx.table.cell(rx.code(key.prefix)),
        rx.table.cell(key.organisation),
        rx.table.cell(key.label),
        rx.table.cell(rx.text(key.scopes, size="1")),
        rx.table.cell(rx.text(local_time_or(key.last_used, "never"), size="2")),
        rx.table.cell(rx.text(local_time_or(key.expires, "never"), size="2")),
        rx.table.cell(rx.badge(key.state), id=f"key-state-{key.id}"),
        rx.table.cell(rx.cond(usable, rx.hstack(
            rx.button("Rotate", size="1", variant="soft", id=f"rotate-{key.id}", disabled=key.state != "active",
                      on_click=AdminApiKeysState.rotate(key.id)),
            rx.button("Revoke", size="1", variant="soft", color_scheme="red", id=f"revoke-{key.id}",
                      on_click=AdminApiKeysState.revoke(key.id)),
            spacing="2"))),
        id=f"key-{key.id}",
    )


def admin_api_keys_page() -> rx.Component:
    return page_frame(
        _messages(),
        _create_form(),
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(label) for label in (
                "Prefix", "Organisation", "Label", "Scopes", "Last use", "Expires", "State", "Actions")])),
            rx.table.body(rx.foreach(AdminApiKeysState.keys, _key_row)),
            width="100%", id="keys-table",
        ),
        title="API keys",
    )
