import reflex as rx

from proctor_app.components.local_time import local_time, local_time_or
from proctor_app.pages.layout import page_frame
from proctor_app.services.settings import SPECS
from proctor_app.state.admin_settings import AdminSettingsState, HoldRow, PlanRow, RunRow

# How the form groups the settings (keys that are not settings are left out); a setting without
# a group lands in "Other".
GROUPS = [
    ("Retention", ["retention_days", "retention_run_at"]),
    ("Features", ["live_video_enabled", "recording_enabled", "screen_recording_enabled",
                  "recording_required_default"]),
    ("Recording", ["chunk_interval_s", "camera_bitrate_kbps", "camera_resolution",
                   "screen_bitrate_kbps", "screen_resolution", "screen_frame_rate",
                   "snapshot_interval_s", "max_chunk_mb", "keep_raw_chunks"]),
    ("Processing and live video", ["processing_concurrency", "live_offline_after_s"]),
]
_GROUPED = {key for _, keys in GROUPS for key in keys}
_OTHER = [key for key in SPECS if key not in _GROUPED]


def _field(key: str) -> rx.Component:
    spec = SPECS[key]
    if isinstance(spec.default, bool):
        control = rx.switch(name=key, id=f"setting-{key}",
                            default_checked=AdminSettingsState.switch_values[key])
    elif key == "retention_run_at":
        control = rx.input(name=key, id=f"setting-{key}", width="8em", type="time",
                           default_value=AdminSettingsState.text_values[key])
    else:
        # Plain text, not type=number: the browser would block some wrong values silently;
        # the server's messages explain every one.
        control = rx.input(name=key, id=f"setting-{key}", width="8em",
                           input_mode="numeric" if isinstance(spec.default, int) else "text",
                           default_value=AdminSettingsState.text_values[key])
    return rx.vstack(
        rx.hstack(rx.el.label(spec.label, html_for=f"setting-{key}", width="22em"), control,
                  align="center"),
        rx.cond(AdminSettingsState.errors.contains(key),
                rx.text(AdminSettingsState.errors[key], color_scheme="red", size="2",
                        id=f"error-{key}")),
        spacing="1",
    )


def _settings_form() -> rx.Component:
    groups = [*GROUPS, ("Other", _OTHER)] if _OTHER else GROUPS
    return rx.form(
        rx.vstack(
            *[rx.card(rx.heading(name, size="3", margin_bottom="0.5em"),
                      rx.vstack(*[_field(key) for key in keys if key in SPECS], spacing="2"),
                      width="100%")
              for name, keys in groups],
            rx.button("Save settings", type="submit", id="save-settings"),
            spacing="3",
        ),
        on_submit=AdminSettingsState.save,
        key=AdminSettingsState.form_key,
    )


def _messages() -> rx.Component:
    return rx.fragment(
        rx.cond(AdminSettingsState.notice != "",
                rx.callout(AdminSettingsState.notice, color_scheme="green", id="settings-notice",
                           margin_bottom="1em")),
        rx.cond(AdminSettingsState.errors.length() > 0,
                rx.callout("Nothing was saved: correct the marked settings.", color_scheme="red",
                           id="settings-error", margin_bottom="1em")),
    )


def _bar_chart(data, chart_id: str, labels_on_side: bool = False) -> rx.Component:
    """Bars of bytes per label; long labels (exam titles) go down the side, every one shown."""
    if labels_on_side:
        axes = (rx.recharts.x_axis(type_="number"),
                rx.recharts.y_axis(data_key="label", type_="category", interval=0, width=180))
    else:
        axes = (rx.recharts.x_axis(data_key="label"), rx.recharts.y_axis())
    return rx.box(
        rx.recharts.bar_chart(
            rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
            *axes,
            rx.recharts.graphing_tooltip(),
            rx.recharts.bar(data_key="amount", name=AdminSettingsState.usage_unit,
                            fill="var(--accent-9)", is_animation_active=False),
            data=data, width="100%", height=260, layout="vertical" if labels_on_side else "horizontal",
        ),
        id=chart_id, width="100%",
    )


def _storage() -> rx.Component:
    return rx.card(
        rx.heading("Storage", size="4", margin_bottom="0.5em"),
        rx.text("In use: ", rx.text.strong(AdminSettingsState.total_used), id="storage-total"),
        rx.text("The next retention run (", local_time(iso=AdminSettingsState.next_run_at), ") will free ",
                rx.text.strong(AdminSettingsState.next_run_frees), ".", id="next-run"),
        rx.grid(
            rx.vstack(rx.text("By month of the exam (", AdminSettingsState.usage_unit, ")", weight="bold"),
                      _bar_chart(AdminSettingsState.usage_by_month, "usage-by-month"), width="100%"),
            rx.vstack(rx.text("By exam (", AdminSettingsState.usage_unit, ")", weight="bold"),
                      _bar_chart(AdminSettingsState.usage_by_exam, "usage-by-exam", labels_on_side=True), width="100%"),
            columns="2", spacing="4", width="100%", margin_top="1em",
        ),
        width="100%",
    )


def _signing_key() -> rx.Component:
    return rx.card(
        rx.heading("Evidence signing key", size="4", margin_bottom="0.5em"),
        rx.text("Recordings and evidence bundles are signed with this install's Ed25519 key. Anyone "
                "verifying a bundle (python -m proctor_app.media verify --bundle PATH --public-key KEY) "
                "compares it with this public key, also served at /api/v1/signing-key.", size="2"),
        rx.code(AdminSettingsState.signing_key, id="signing-key"),
        rx.text("SHA-256 fingerprint: ", rx.code(AdminSettingsState.signing_key_fingerprint,
                                                 id="signing-key-fingerprint"), size="2"),
        width="100%",
    )


def _plan_row(row: PlanRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(row.attempt_id, href=f"/attempts/{row.attempt_id}/video")),
        rx.table.cell(row.exam), rx.table.cell(row.candidate),
        rx.table.cell(rx.cond(row.resumed, "Finishing an interrupted deletion. ", ""), row.reason),
        rx.table.cell(row.files), rx.table.cell(row.size),
        id=f"plan-{row.attempt_id}",
    )


def _run_row(row: RunRow) -> rx.Component:
    return rx.table.row(rx.table.cell(local_time(iso=row.at)), rx.table.cell(row.by), rx.table.cell(row.attempts),
                        rx.table.cell(row.files), rx.table.cell(row.freed), rx.table.cell(row.errors))


def _run_button() -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button("Run now", color_scheme="red", high_contrast=True, loading=AdminSettingsState.running,
                      id="run-now")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Delete expired media now?"),
            rx.alert_dialog.description(
                "Recordings, snapshots and raw chunks past the retention period are deleted for "
                "good. Attempts on legal hold or being processed are kept."),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Cancel", variant="soft")),
                rx.alert_dialog.action(rx.button("Delete", color_scheme="red", high_contrast=True, id="run-now-confirm",
                                                 on_click=AdminSettingsState.start_run)),
                justify="end", spacing="3", margin_top="1em",
            ),
        ),
    )


def _retention() -> rx.Component:
    return rx.card(
        rx.heading("Retention runs", size="4", margin_bottom="0.5em"),
        rx.text("Runs daily at the time set above. A dry run lists what a run now would delete, "
                "and deletes nothing."),
        rx.hstack(rx.button("Dry run", variant="soft", id="dry-run", on_click=AdminSettingsState.dry_run),
                  _run_button(), spacing="3", margin_y="1em"),
        rx.cond(AdminSettingsState.run_summary != "",
                rx.callout(AdminSettingsState.run_summary, color_scheme="green", id="run-summary")),
        rx.cond(AdminSettingsState.run_error != "",
                rx.callout(AdminSettingsState.run_error, color_scheme="red", id="run-error")),
        rx.cond(AdminSettingsState.plan_summary != "",
                rx.text(AdminSettingsState.plan_summary, id="plan-summary", margin_y="0.5em")),
        rx.cond(AdminSettingsState.plan_rows.length() > 0,
                rx.table.root(
                    rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in (
                        "Attempt", "Exam", "Candidate", "Why", "Files", "Size")])),
                    rx.table.body(rx.foreach(AdminSettingsState.plan_rows, _plan_row)),
                    width="100%", id="plan-table")),
        rx.heading("Recent runs", size="3", margin_top="1em"),
        rx.table.root(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in (
                "When", "By", "Attempts", "Files", "Freed", "Errors")])),
            rx.table.body(rx.foreach(AdminSettingsState.recent_runs, _run_row)),
            width="100%", id="recent-runs"),
        width="100%",
    )


def _hold_row(row: HoldRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(row.attempt_id, href=f"/attempts/{row.attempt_id}/video")),
        rx.table.cell(row.exam), rx.table.cell(row.candidate), rx.table.cell(local_time_or(row.ended, "not ended")),
        rx.table.cell(rx.button("Release", size="1", variant="soft", id=f"release-{row.attempt_id}",
                                on_click=AdminSettingsState.release_hold(row.attempt_id))),
        id=f"hold-{row.attempt_id}",
    )


def _legal_holds() -> rx.Component:
    return rx.card(
        rx.heading("Legal holds", size="4", margin_bottom="0.5em"),
        rx.text("Retention never deletes the media of an attempt on legal hold."),
        rx.form(
            rx.hstack(rx.input(name="attempt_id", placeholder="Attempt number", id="hold-attempt",
                               input_mode="numeric", width="12em"),
                      rx.input(placeholder="Reason (for placing or releasing)", id="hold-reason",
                               value=AdminSettingsState.hold_reason,
                               on_change=AdminSettingsState.set_hold_reason, width="20em"),
                      rx.button("Place hold", type="submit", id="place-hold"), spacing="2"),
            on_submit=AdminSettingsState.place_hold, key=AdminSettingsState.hold_form_key,
            margin_y="1em",
        ),
        rx.cond(AdminSettingsState.hold_error != "",
                rx.callout(AdminSettingsState.hold_error, color_scheme="red", id="hold-error",
                           margin_bottom="1em")),
        rx.cond(AdminSettingsState.holds.length() > 0,
                rx.table.root(
                    rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in (
                        "Attempt", "Exam", "Candidate", "Ended", "")])),
                    rx.table.body(rx.foreach(AdminSettingsState.holds, _hold_row)),
                    width="100%", id="holds-table"),
                rx.text("No attempt is on legal hold.", id="no-holds", color_scheme="gray")),
        width="100%",
    )


def admin_settings_page() -> rx.Component:
    settings = rx.cond(
        AdminSettingsState.loaded,
        rx.vstack(_messages(), _settings_form(), _storage(), _retention(), _legal_holds(), _signing_key(),
                  spacing="5", width="100%"),
        rx.center(rx.spinner(), min_height="40vh"),
    )
    install_only = rx.callout(
        "Settings (retention, recording defaults, flags) are the whole install's: only the install's "
        "administrators see and change them. Ask them for a change.", id="settings-install-only")
    return page_frame(rx.cond(AdminSettingsState.install_only, install_only, settings), title="Settings")
