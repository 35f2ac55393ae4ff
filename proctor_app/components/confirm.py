"""A button that asks before it acts: the candidate's Submit and End, which cannot be undone."""

import reflex as rx


def confirmed_button(label, *, title, description, keep, confirm, color_scheme: str, on_confirm,
                     id: str, confirm_id: str) -> rx.Component:
    """`label` opens a dialog with `title` and `description`; `keep` closes it, `confirm` runs
    `on_confirm`."""
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button(label, color_scheme=color_scheme, high_contrast=True, id=id)),
        rx.alert_dialog.content(
            rx.alert_dialog.title(title),
            rx.alert_dialog.description(description),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button(keep, variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button(confirm, color_scheme=color_scheme, high_contrast=True,
                                                 on_click=on_confirm, id=confirm_id)),
                justify="end", spacing="3", margin_top="1em",
            ),
        ),
    )
