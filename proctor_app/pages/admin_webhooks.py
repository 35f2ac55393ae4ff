import reflex as rx

from proctor_app.components.local_time import local_time
from proctor_app.pages.layout import page_frame
from proctor_app.state.admin_webhooks import AdminWebhooksState, EndpointRow, LogRow


def _messages() -> rx.Component:
    return rx.fragment(
        rx.cond(AdminWebhooksState.error != "",
                rx.callout(AdminWebhooksState.error, color_scheme="red", id="webhooks-error", margin_bottom="1em")),
        rx.cond(AdminWebhooksState.notice != "",
                rx.callout(AdminWebhooksState.notice, color_scheme="green", id="webhooks-notice",
                           margin_bottom="1em")),
        rx.cond(AdminWebhooksState.new_secret != "",
                rx.card(rx.text("The endpoint's signing secret (shown only now):", size="2"),
                        rx.code(AdminWebhooksState.new_secret, id="install-secret"), margin_bottom="1em")),
    )


def _install_form() -> rx.Component:
    return rx.cond(AdminWebhooksState.install_admin, rx.card(
        rx.form(rx.vstack(
            rx.heading("Operator alerts (operator.alert)", size="4"),
            rx.text("The install's own endpoint; empty: none.", size="2"),
            rx.hstack(rx.input(name="url", default_value=AdminWebhooksState.install_url, id="install-url",
                               placeholder="https://ops.example.com/hooks", width="30em", key=AdminWebhooksState.install_url),
                      rx.button("Save", type="submit", id="save-install-url")),
        ), on_submit=AdminWebhooksState.save_install_endpoint),
        margin_bottom="1.5em"))


def _endpoint_row(row: EndpointRow) -> rx.Component:
    return rx.table.row(rx.table.cell(rx.code(row.id)), rx.table.cell(row.organisation), rx.table.cell(row.url),
                        rx.table.cell(rx.text(row.events, size="1")), rx.table.cell(rx.badge(row.state)),
                        id=f"endpoint-{row.id}")


def _log_row(row: LogRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(local_time(iso=row.at), size="2")),
        rx.table.cell(row.organisation), rx.table.cell(row.event_type),
        rx.table.cell(row.number), rx.table.cell(row.status_code), rx.table.cell(row.latency),
        rx.table.cell(rx.text(row.excerpt, size="1")), rx.table.cell(rx.badge(row.delivery_status)),
        rx.table.cell(rx.button("Redeliver", size="1", variant="soft", id=f"redeliver-{row.key}",
                                on_click=AdminWebhooksState.redeliver(row.delivery_id))),
        id=f"try-{row.key}")


def admin_webhooks_page() -> rx.Component:
    return page_frame(
        _messages(),
        _install_form(),
        rx.heading("Endpoints", size="4"),
        rx.text("Integrators manage them through /api/v1/webhooks.", size="2"),
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(label) for label in (
                "Id", "Organisation", "URL", "Events", "State")])),
            rx.table.body(rx.foreach(AdminWebhooksState.endpoints, _endpoint_row)),
            width="100%", id="endpoints-table", margin_bottom="1.5em"),
        rx.hstack(rx.heading("Delivery log", size="4"),
                  rx.button("Refresh", size="1", variant="soft", on_click=AdminWebhooksState.refresh,
                            id="refresh-log")),
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(label) for label in (
                "Time", "Organisation", "Event", "Try", "Status", "Latency", "Response", "Delivery", "")])),
            rx.table.body(rx.foreach(AdminWebhooksState.log, _log_row)),
            width="100%", id="delivery-log"),
        title="Webhooks",
    )
