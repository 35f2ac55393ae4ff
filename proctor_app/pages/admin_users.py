import reflex as rx

from proctor_app.auth.passwords import MIN_PASSWORD_LENGTH
from proctor_app.pages.layout import page_frame, pager
from proctor_app.services.accounts import ROLES
from proctor_app.state.admin_users import AdminUsersState, UserRow


def _messages() -> rx.Component:
    return rx.fragment(
        # While the reset dialog is open, its own copy of the error is the one to read.
        rx.cond((AdminUsersState.error != "") & (AdminUsersState.reset_user_id == 0),
                rx.callout(AdminUsersState.error, color_scheme="red", id="users-error",
                           margin_bottom="1em")),
        rx.cond(AdminUsersState.notice != "",
                rx.callout(AdminUsersState.notice, color_scheme="green", id="users-notice",
                           margin_bottom="1em")),
    )


def _create_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("New user", size="4"),
                rx.hstack(
                    rx.input(name="email", placeholder="Email", type="email", id="new-user-email"),
                    rx.input(name="name", placeholder="Full name", id="new-user-name"),
                    rx.el.select(*[rx.el.option(role, value=role) for role in ROLES],
                                 name="role", default_value="candidate", id="new-user-role", aria_label="Role"),
                    rx.input(name="password", type="password", id="new-user-password",
                             placeholder=f"Initial password ({MIN_PASSWORD_LENGTH}+ characters)",
                             width="18em"),
                    rx.cond(AdminUsersState.all_organisations, rx.fragment(
                        rx.el.select(rx.foreach(AdminUsersState.organisation_options,
                                                lambda o: rx.el.option(o[1], value=o[0])),
                                     name="organisation", id="new-user-organisation", aria_label="Organisation"),
                        rx.el.label(rx.el.input(type="checkbox", name="install_admin", id="new-user-install-admin"),
                                    " install admin"),
                    )),
                    rx.button("Create user", type="submit", id="create-user"),
                    spacing="2", align="center", wrap="wrap",
                ),
            ),
            on_submit=AdminUsersState.create_user,
            key=AdminUsersState.create_form_key,
        ),
        margin_bottom="1.5em",
    )


def _user_row(user: UserRow) -> rx.Component:
    is_me = user.id == AdminUsersState.my_user_id
    return rx.table.row(
        rx.table.cell(user.name),
        rx.table.cell(user.email),
        rx.table.cell(
            rx.cond(
                AdminUsersState.all_organisations & ~is_me,
                rx.el.select(rx.foreach(AdminUsersState.organisation_options,
                                        lambda o: rx.el.option(o[1], value=o[0])),
                             value=user.organisation_id, id=f"organisation-{user.id}",
                             aria_label=f"Organisation of {user.email}",
                             on_change=lambda org: AdminUsersState.move_user(user.id, org)),
                rx.text(user.organisation, id=f"organisation-{user.id}"),
            ),
            rx.cond(user.install_admin, rx.badge("install admin", color_scheme="purple")),
        ),
        rx.table.cell(
            rx.el.select(*[rx.el.option(role, value=role) for role in ROLES],
                         value=user.role, disabled=is_me, id=f"role-{user.id}", aria_label=f"Role of {user.email}",
                         on_change=lambda role: AdminUsersState.change_role(user.id, role)),
        ),
        rx.table.cell(rx.cond(user.active, rx.badge("active", color_scheme="green"),
                              rx.badge("deactivated", color_scheme="gray")),
                      id=f"active-{user.id}"),
        rx.table.cell(
            rx.hstack(
                rx.cond(
                    user.active,
                    rx.button("Deactivate", size="1", color_scheme="red", variant="soft",
                              disabled=is_me, id=f"deactivate-{user.id}",
                              on_click=AdminUsersState.set_active(user.id, False)),
                    rx.button("Reactivate", size="1", variant="soft", id=f"reactivate-{user.id}",
                              on_click=AdminUsersState.set_active(user.id, True)),
                ),
                rx.button("Reset password", size="1", variant="soft", id=f"reset-{user.id}",
                          on_click=AdminUsersState.open_reset(user.id)),
                rx.button("Log out everywhere", size="1", variant="soft", id=f"logout-all-{user.id}",
                          on_click=AdminUsersState.logout_everywhere(user.id)),
                spacing="2",
            ),
        ),
        id=f"user-{user.id}",
    )


def _reset_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Reset password"),
            rx.dialog.description(
                "Set a new password for ", AdminUsersState.reset_user_email,
                ". Their open sessions end at once."),
            rx.form(
                rx.vstack(
                    rx.input(name="password", type="password", id="reset-password",
                             placeholder=f"New password ({MIN_PASSWORD_LENGTH}+ characters)"),
                    rx.cond(AdminUsersState.error != "",
                            rx.callout(AdminUsersState.error, color_scheme="red", id="reset-error")),
                    rx.hstack(
                        rx.button("Cancel", type="button", variant="soft", id="reset-cancel",
                                  on_click=AdminUsersState.close_reset),
                        rx.button("Set password", type="submit", id="reset-submit"),
                        justify="end", width="100%",
                    ),
                    spacing="3", margin_top="1em",
                ),
                on_submit=AdminUsersState.reset_password,
            ),
        ),
        open=AdminUsersState.reset_user_id != 0,
        on_open_change=lambda _open: AdminUsersState.close_reset(),
    )


def admin_users_page() -> rx.Component:
    return page_frame(
        _messages(),
        _create_form(),
        rx.form(rx.hstack(rx.input(name="search", placeholder="Name or email", id="users-search",
                                   default_value=AdminUsersState.search, key=AdminUsersState.search,
                                   aria_label="Search users by name or email"),
                          rx.button("Search", type="submit", id="users-search-submit")),
                on_submit=AdminUsersState.search_users, margin_bottom="1em"),
        rx.table.root(
            rx.table.header(rx.table.row(
                *[rx.table.column_header_cell(label)
                  for label in ("Name", "Email", "Organisation", "Role", "Status", "Actions")])),
            rx.table.body(rx.foreach(AdminUsersState.users, _user_row)),
            width="100%", id="users-table",
        ),
        pager(AdminUsersState, "user", "users"),
        _reset_dialog(),
        title="Users",
    )
