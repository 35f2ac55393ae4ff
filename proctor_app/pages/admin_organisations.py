import reflex as rx

from proctor_app.pages.layout import page_frame
from proctor_app.state.admin_organisations import AdminOrganisationsState, OrganisationRow


def _messages() -> rx.Component:
    return rx.fragment(
        rx.cond(AdminOrganisationsState.error != "",
                rx.callout(AdminOrganisationsState.error, color_scheme="red", id="organisations-error",
                           margin_bottom="1em")),
        rx.cond(AdminOrganisationsState.notice != "",
                rx.callout(AdminOrganisationsState.notice, color_scheme="green", id="organisations-notice",
                           margin_bottom="1em")),
    )


def _create_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.hstack(
                rx.input(name="slug", placeholder="Slug (a-z, 0-9, -)", id="new-organisation-slug"),
                rx.input(name="name", placeholder="Name", id="new-organisation-name", width="18em"),
                rx.button("Create organisation", type="submit", id="create-organisation"),
                spacing="2", align="center", wrap="wrap",
            ),
            on_submit=AdminOrganisationsState.create,
            key=AdminOrganisationsState.create_form_key,
        ),
        margin_bottom="1.5em",
    )


def _row(row: OrganisationRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(row.slug)),
        rx.table.cell(
            rx.form(
                rx.hstack(
                    rx.el.input(type="hidden", name="organisation_id", value=row.id),
                    rx.input(name="name", default_value=row.name, id=f"organisation-name-{row.id}",
                             aria_label="Name"),
                    rx.text_area(name="origins", default_value=row.origins, rows="2", width="22em",
                                 placeholder="Allowed origins, one a line: https://lms.example.com",
                                 id=f"organisation-origins-{row.id}"),
                    rx.button("Save", type="submit", size="1", id=f"organisation-save-{row.id}"),
                    spacing="2", align="center",
                ),
                on_submit=AdminOrganisationsState.save,
                key=f"{AdminOrganisationsState.rows_key}-{row.id}",
            ),
        ),
        rx.table.cell(row.users, id=f"organisation-users-{row.id}"),
        rx.table.cell(row.exams, id=f"organisation-exams-{row.id}"),
        rx.table.cell(row.attempts, id=f"organisation-attempts-{row.id}"),
        id=f"organisation-{row.slug}",
    )


def admin_organisations_page() -> rx.Component:
    return page_frame(
        _messages(),
        _create_form(),
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(label) for label in (
                "Slug", "Name and allowed origins", "Users", "Exams", "Attempts")])),
            rx.table.body(rx.foreach(AdminOrganisationsState.rows, _row)),
            width="100%", id="organisations-table",
        ),
        title="Organisations",
    )
