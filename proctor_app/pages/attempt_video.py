"""/attempts/[attempt_id]/video: one attempt's recordings, events, snapshots, health and review."""

import reflex as rx

from proctor_app.components.attempt_player import attempt_player, every_interval
from proctor_app.components.local_time import local_time
from proctor_app.models import ReviewStatus
from proctor_app.pages.layout import page_frame
from proctor_app.services import legal_holds
from proctor_app.services.live_views import ViewRow
from proctor_app.state.attempt_video import AttemptVideoState, EventRow, GapRow, SnapshotRow, StreamPanel

SEVERITY_COLORS = {"info": "blue", "warning": "amber", "critical": "red"}
PROGRESS_POLL_MS = 2000


def _severity_badge(severity) -> rx.Component:
    return rx.badge(severity, color_scheme=rx.match(severity, *SEVERITY_COLORS.items(), "gray"))


def _event_details(details) -> rx.Component:
    """The event's data behind a disclosure: the sentence says what happened, these say how."""
    return rx.el.details(
        rx.el.summary(rx.text("Details", as_="span", size="1", color_scheme="gray")),
        rx.foreach(details, lambda line: rx.text(line, size="1", color_scheme="gray")),
        class_name="event-details",
    )


def _event_row(event: EventRow) -> rx.Component:
    return rx.hstack(
        rx.text(event.clock, width="4.5em", font_family="monospace"),
        _severity_badge(event.severity),
        rx.vstack(rx.text(event.text, weight="medium", class_name="event-text"),
                  rx.cond(event.details.length() > 0, _event_details(event.details)), spacing="0"),
        class_name="event-row", custom_attrs={"data-seek-s": event.seek_s}, title=event.at,
        cursor=rx.cond(event.seek_s != "", "pointer", "default"),
        padding="4px", border_bottom="1px solid var(--gray-4)", width="100%", align="start",
    )


def _snapshot(snapshot: SnapshotRow) -> rx.Component:
    return rx.vstack(
        rx.image(src=snapshot.src, alt=f"Snapshot at {snapshot.clock}", width="160px",
                 border_radius="4px", loading="lazy"),
        rx.text(snapshot.clock, size="1"),
        class_name="snapshot", custom_attrs={"data-seek-s": snapshot.seek_s},
        cursor=rx.cond(snapshot.seek_s != "", "pointer", "default"), spacing="1",
    )


def _gap_row(gap: GapRow) -> rx.Component:
    return rx.table.row(rx.table.cell(gap.span), rx.table.cell(gap.duration), rx.table.cell(gap.cause))


def _stream_panel(panel: StreamPanel) -> rx.Component:
    return rx.card(
        rx.hstack(rx.heading(panel.stream, size="3"), rx.badge(panel.summary, color_scheme=panel.color),
                  align="center"),
        rx.cond(panel.status == "processing",
                rx.progress(value=panel.progress, max=100, class_name="processing-progress", margin_top="8px")),
        rx.cond(panel.coverage != "",
                rx.text("Coverage of the exam time: ", rx.text.strong(panel.coverage), size="2",
                        class_name="coverage", margin_top="8px")),
        rx.cond(panel.gaps.length() > 0,
                rx.table.root(
                    rx.table.header(rx.table.row(rx.table.column_header_cell("Missing"),
                                                 rx.table.column_header_cell("Length"),
                                                 rx.table.column_header_cell("Cause"))),
                    rx.table.body(rx.foreach(panel.gaps, _gap_row)),
                    size="1", class_name="gaps"),
                rx.cond(panel.coverage != "", rx.text("No gaps.", size="2"))),
        rx.cond(panel.uploading != "",
                rx.text(panel.uploading, size="2", color_scheme="blue", class_name="uploading")),
        rx.cond(panel.download_url != "",
                # Document navigation: client-side routing would try to render /api/... as a page.
                rx.link("Download MP4", href=panel.download_url, reload_document=True,
                        class_name="download-link", custom_attrs={"download": ""})),
        width="100%", class_name="stream-panel",
    )


def _legal_hold_dialog() -> rx.Component:
    state = AttemptVideoState
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(rx.cond(state.legal_hold, "Release legal hold", "Place legal hold"), size="1",
                      variant="soft", color_scheme=rx.cond(state.legal_hold, "gray", "amber"),
                      disabled=~state.can_change_hold, id="legal-hold-toggle")),
        rx.alert_dialog.content(
            rx.alert_dialog.title(rx.cond(state.legal_hold, "Release the legal hold?",
                                          "Place this attempt on legal hold?")),
            rx.alert_dialog.description(rx.cond(
                state.legal_hold,
                "Retention then deletes the recording once its retention period has passed.",
                "Retention keeps the recording, snapshots and raw chunks until the hold is released.")),
            rx.form(
                rx.input(name="reason", placeholder="Reason, e.g. the appeal or case number",
                         max_length=legal_holds.MAX_HOLD_REASON, id="legal-hold-reason", margin_top="1em"),
                rx.hstack(
                    rx.alert_dialog.cancel(rx.button("Cancel", variant="soft", color_scheme="gray",
                                                     type="button")),
                    rx.alert_dialog.action(rx.button(rx.cond(state.legal_hold, "Release", "Place hold"),
                                                     type="submit", id="legal-hold-confirm")),
                    justify="end", spacing="3", margin_top="1em",
                ),
                on_submit=state.toggle_legal_hold, reset_on_submit=True,
            ),
        ),
    )


def _retention() -> rx.Component:
    state = AttemptVideoState
    return rx.vstack(
        rx.hstack(
            rx.text(state.retention_notice, id="retention-notice", size="2"),
            _legal_hold_dialog(),
            rx.cond(state.user_role == "proctor",
                    rx.text("Supervisors and admins place and release legal holds.", size="1",
                            color_scheme="gray")),
            align="center", spacing="3", wrap="wrap",
        ),
        rx.cond(state.hold_error != "",
                rx.callout(state.hold_error, color_scheme="red", id="legal-hold-error")),
        width="100%",
    )


def _review_form() -> rx.Component:
    return rx.card(
        rx.heading("Review", size="4"),
        rx.form(
            rx.vstack(
                rx.select.root(
                    rx.select.trigger(id="review-status", aria_label="Review status"),
                    rx.select.content(*[rx.select.item(status.value.replace("_", " "), value=status.value)
                                        for status in ReviewStatus]),
                    name="status", default_value=AttemptVideoState.review_status),
                rx.text_area(name="notes", default_value=AttemptVideoState.review_notes,
                             placeholder="Notes", id="review-notes", width="100%", rows="4"),
                rx.hstack(rx.button("Save review", type="submit", id="review-save"),
                          rx.text(AttemptVideoState.reviewed_label, size="2", id="reviewed-label"),
                          align="center"),
                rx.cond(AttemptVideoState.review_error != "",
                        rx.callout(AttemptVideoState.review_error, color_scheme="red", id="review-error")),
                rx.cond(AttemptVideoState.review_saved != "",
                        rx.text(AttemptVideoState.review_saved, color_scheme="green", id="review-saved")),
                width="100%",
            ),
            key=AttemptVideoState.review_form_key,
            on_submit=AttemptVideoState.save_review,
        ),
        width="100%",
    )


def _previews() -> rx.Component:
    """What has been uploaded so far, for recordings not processed yet (rebuilt by the server
    every few seconds; "Load the latest" fetches it again)."""
    state = AttemptVideoState
    return rx.vstack(
        rx.hstack(rx.heading("Uploaded so far", size="4"),
                  rx.button("Load the latest", on_click=state.reload_previews, variant="soft",
                            size="1", id="reload-previews"), align="center"),
        rx.text(state.player_caption, size="2", id="player-caption"),
        rx.hstack(rx.foreach(state.previews, lambda preview: rx.vstack(
            rx.text(preview["stream"], size="2", weight="bold"),
            # A new URL each round (the signature ignores extra parameters), so the browser's
            # media cache cannot hand back the shorter preview.
            rx.el.video(src=preview["src"] + "&round=" + state.preview_round.to_string(),
                        controls=True, muted=True, preload="metadata",
                        id="preview-" + preview["stream"], width="480"),
        )), wrap="wrap", spacing="4"),
        width="100%",
    )


def _view_row(view: ViewRow) -> rx.Component:
    return rx.table.row(rx.table.cell(view.who), rx.table.cell(view.what), rx.table.cell(view.started),
                        rx.table.cell(rx.cond(view.ended != "", view.ended,
                                              rx.cond(view.what.startswith("live"), "still watching", ""))),
                        class_name="view-row")


def _views() -> rx.Component:
    """Accountable viewing: live views and recorded-media views, from the audit log."""
    return rx.vstack(
        rx.heading("Who watched", size="4"),
        rx.cond(AttemptVideoState.views.length() > 0,
                rx.table.root(
                    rx.table.header(rx.table.row(*[rx.table.column_header_cell(name)
                                                   for name in ("Who", "What", "From", "To")])),
                    rx.table.body(rx.foreach(AttemptVideoState.views, _view_row)),
                    size="1", id="view-list"),
                rx.text("Nobody has watched this attempt yet.", size="2", id="no-views")),
        width="100%",
    )


def _content() -> rx.Component:
    state = AttemptVideoState
    return rx.vstack(
        rx.link("All attempts", href="/attempts"),
        rx.text(rx.text.strong(state.candidate), " - ", state.exam_title, id="attempt-heading"),
        rx.text(state.origin, size="2", color_scheme="gray", id="attempt-origin"),
        rx.text("Status: ", state.attempt_status, ". Started ",
                local_time(iso=state.started, id="attempt-started"),
                rx.cond(state.ended != "", rx.fragment(", ended ", local_time(iso=state.ended, id="attempt-ended"))),
                ".", size="2"),
        _retention(),
        rx.cond(state.in_progress,
                rx.callout(rx.text("This attempt is in progress: its recording is processed when it ends. ",
                                   rx.link("Watch it live", href="/proctor"), "."),
                           id="in-progress", color_scheme="blue")),
        rx.cond(state.previews.length() > 0, _previews()),
        rx.cond(state.processing, every_interval(ms=PROGRESS_POLL_MS, on_tick=state.refresh)),
        rx.cond(state.processing_queued,
                rx.text("Processing is queued and starts shortly.", id="processing-queued", size="2")),
        rx.cond((state.user_role == "admin") & state.can_reprocess,
                rx.button("Process the recordings again", on_click=state.reprocess, id="reprocess",
                          variant="soft")),
        rx.cond(state.reprocess_notice != "", rx.text(state.reprocess_notice, id="reprocess-notice", size="2")),
        rx.cond(state.evidence_url != "",
                rx.link("Download the evidence bundle (signed recordings, events, snapshots)",
                        href=state.evidence_url, reload_document=True, id="evidence-download",
                        custom_attrs={"download": ""})),
        rx.cond(state.player_videos.length() > 0,
                rx.vstack(rx.text(state.player_caption, size="2", id="player-caption"),
                          attempt_player(videos=state.player_videos, markers=state.markers,
                                         gaps=state.timeline_gaps, timeline_s=state.timeline_s,
                                         sprite=state.sprite),
                          width="100%"),
                rx.cond(state.previews.length() == 0,
                        rx.callout(state.player_caption, id="no-player", color_scheme="gray"))),
        rx.grid(
            rx.vstack(rx.heading("Recordings", size="4"), rx.foreach(state.streams, _stream_panel),
                      rx.cond(state.streams.length() == 0, rx.text("Nothing was recorded.")),
                      width="100%"),
            rx.vstack(rx.heading("Events", size="4"),
                      rx.scroll_area(rx.vstack(rx.foreach(state.events, _event_row), spacing="0",
                                               width="100%"),
                                     max_height="360px", id="event-list"),
                      width="100%"),
            columns="2", spacing="4", width="100%",
        ),
        rx.heading("Snapshots", size="4"),
        rx.cond(state.snapshots.length() > 0,
                rx.flex(rx.foreach(state.snapshots, _snapshot), wrap="wrap", spacing="3",
                        id="snapshot-gallery"),
                rx.text("No snapshots.", size="2")),
        _views(),
        _review_form(),
        spacing="4", width="100%",
    )


def attempt_video_page() -> rx.Component:
    return page_frame(
        rx.cond(AttemptVideoState.found, _content(),
                rx.cond(AttemptVideoState.missing,
                        rx.callout("There is no such attempt.", color_scheme="red", id="attempt-missing"),
                        rx.spinner())),
        title="Attempt video",
    )
