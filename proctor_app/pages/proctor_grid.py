"""/proctor: live tiles (low resolution) of attempts in progress, and a focused view (full
resolution camera, screen share, event feed) of the one clicked."""

import reflex as rx

from proctor_app.components.keyboard import ESCAPE_CLICKS, KEY_ACTIVATES, keyboard_buttons
from proctor_app.components.live import live_video
from proctor_app.media.live.status import LiveStatus
from proctor_app.pages.layout import page_frame, pager
from proctor_app.state.proctor_grid import (
    ANY,
    SOUND_ON,
    STATUS_LABELS,
    AlertLine,
    EventLine,
    HealthLine,
    ProctorGridState,
    Tile,
)


def _event(line: EventLine) -> rx.Component:
    return rx.hstack(rx.text(line.at, size="1", color_scheme="gray"),
                     rx.text(line.text, size="1", color_scheme=line.color),
                     spacing="2", class_name="event-line")


def _health(line: HealthLine) -> rx.Component:
    return rx.tooltip(rx.badge(line.stream, ": ", line.state, color_scheme=line.color, size="1",
                               class_name="recording-health",
                               custom_attrs={"data-state": line.state}),
                      content=line.detail)


def _status_badge(tile: Tile, id_prefix: str) -> rx.Component:
    # A live region: screen readers hear a candidate's connection change (reconnecting, offline).
    return rx.badge(tile.status_label, rx.cond(tile.status_for != "", " " + tile.status_for, ""),
                    color_scheme=tile.status_color, class_name="live-status", role="status",
                    id=f"{id_prefix}-{tile.attempt_id}", custom_attrs={"data-status": tile.status})


def _video_or_note(src, note: str, **props) -> rx.Component:
    return rx.cond(src != "", live_video(src=src, rtc_config=ProctorGridState.rtc_config, **props),
                   rx.center(rx.text(note, size="2", color_scheme="gray"),
                             aspect_ratio="4 / 3", background="var(--gray-3)", width="100%"))


def _tile(tile: Tile) -> rx.Component:
    # A button to keyboards and screen readers too: Enter or Space opens the focused view.
    return rx.card(
        rx.vstack(
            _video_or_note(tile.tile_src, "Live video off", class_name="tile-video"),
            rx.hstack(rx.text(tile.candidate, weight="bold", size="2", trim="both"), rx.spacer(),
                      _status_badge(tile, "status"), width="100%", align="center"),
            rx.text(tile.exam, size="1", color_scheme="gray"),
            rx.text(tile.elapsed, " in, ", tile.left, " left", size="1"),
            # Recording warnings (a stream failing) are announced as they come.
            rx.flex(rx.foreach(tile.recordings, _health), wrap="wrap", spacing="1", aria_live="polite"),
            rx.vstack(rx.foreach(tile.events, _event), spacing="0"),
            spacing="1", width="100%",
        ),
        on_click=ProctorGridState.open_focus(tile.attempt_id),
        cursor="pointer", class_name="live-tile", id=f"tile-{tile.attempt_id}", tab_index=0, role="button",
        custom_attrs={"data-attempt-id": tile.attempt_id, **KEY_ACTIVATES}, key=tile.attempt_id,
    )


def _focus() -> rx.Component:
    focus = ProctorGridState.focus
    return rx.cond(
        focus.attempt_id != 0,
        rx.card(
            rx.vstack(
                rx.hstack(rx.heading(focus.candidate, size="4"), _status_badge(focus, "focus-status"),
                          rx.text(focus.exam, color_scheme="gray"), rx.spacer(),
                          rx.link("Recording", href=f"/attempts/{focus.attempt_id}/video"),
                          rx.button("Close", variant="soft", on_click=ProctorGridState.close_focus,
                                    id="focus-close", custom_attrs=ESCAPE_CLICKS),
                          width="100%", align="center"),
                rx.grid(
                    rx.flex(
                        rx.vstack(rx.text("Camera", size="2", weight="bold"),
                                  _video_or_note(focus.camera_src, "Live video off", id="focus-camera",
                                                 audio=True),
                                  flex="1", min_width="0"),
                        rx.cond(focus.screen_src != "",
                                rx.vstack(rx.text("Screen", size="2", weight="bold"),
                                          live_video(src=focus.screen_src, rtc_config=ProctorGridState.rtc_config,
                                                     id="focus-screen"),
                                          flex="1", min_width="0")),
                        gap="1em", width="100%",
                    ),
                    rx.vstack(rx.text("Events", size="2", weight="bold"),
                              rx.scroll_area(rx.vstack(rx.foreach(ProctorGridState.focus_events, _event),
                                                       spacing="1", id="focus-events"),
                                             max_height="480px")),
                    grid_template_columns="3fr 1fr", spacing="4", width="100%",
                ),
                spacing="3", width="100%",
            ),
            id="focus", custom_attrs={"data-attempt-id": focus.attempt_id}, width="100%",
        ),
    )


def _alert(alert: AlertLine) -> rx.Component:
    return rx.hstack(
        rx.text(alert.at, size="1", color_scheme="gray"),
        rx.link(alert.text, size="2", on_click=ProctorGridState.open_focus(alert.attempt_id), cursor="pointer"),
        rx.spacer(),
        rx.button("Acknowledge", size="1", variant="soft",
                  on_click=ProctorGridState.acknowledge_alert(alert.id), id=f"ack-{alert.id}"),
        class_name="alert-line", custom_attrs={"data-attempt-id": alert.attempt_id}, align="center",
        width="100%", key=alert.id,
    )


def _alerts() -> rx.Component:
    """Open alerts until acknowledged; the sound switch is this browser's own choice."""
    state = ProctorGridState
    return rx.card(
        rx.vstack(
            rx.hstack(rx.heading("Alerts", size="3"),
                      rx.badge(state.alert_count, color_scheme=rx.cond(state.alert_count > 0, "red", "gray"),
                               id="alert-count"),
                      rx.spacer(),
                      rx.el.label(rx.hstack(rx.switch(checked=state.alert_sound == SOUND_ON,
                                                      on_change=state.set_alert_sound, id="alert-sound",
                                                      size="1"),
                                            rx.text("Sound for new alerts", size="2"),
                                            align="center", spacing="1")),
                      width="100%", align="center"),
            rx.cond(state.alert_count > 0,
                    rx.vstack(rx.foreach(state.alerts, _alert), spacing="1", width="100%", id="alerts"),
                    rx.text("No open alerts.", size="2", color_scheme="gray", id="no-alerts")),
            spacing="2", width="100%",
        ),
        width="100%", id="alerts-panel",
    )


def _filters() -> rx.Component:
    state = ProctorGridState
    return rx.hstack(
        rx.select.root(
            rx.select.trigger(id="filter-exam", aria_label="Exam"),
            rx.select.content(rx.select.item("All exams", value=ANY),
                              rx.foreach(state.exam_options, lambda o: rx.select.item(o[1], value=o[0]))),
            value=state.exam_filter, on_change=lambda v: state.set_filter("exam_filter", v)),
        rx.select.root(
            rx.select.trigger(id="filter-status", aria_label="Live status"),
            rx.select.content(rx.select.item("Any status", value=ANY),
                              *[rx.select.item(label, value=status) for status, label in STATUS_LABELS.items()]),
            value=state.status_filter, on_change=lambda v: state.set_filter("status_filter", v)),
        rx.form(rx.hstack(rx.input(name="search", placeholder="Candidate name or email",
                                   default_value=state.search, id="filter-search",
                                   aria_label="Search candidates by name or email"),
                          rx.button("Search", type="submit", id="search-submit")),
                on_submit=state.search_candidates),
        rx.spacer(),
        rx.hstack(
            rx.badge(state.live_count, " ", STATUS_LABELS[LiveStatus.live], color_scheme="green", id="count-live"),
            rx.badge(state.reconnecting_count, " ", STATUS_LABELS[LiveStatus.reconnecting], color_scheme="amber",
                     id="count-reconnecting"),
            rx.badge(state.offline_count, " ", STATUS_LABELS[LiveStatus.offline], color_scheme="gray",
                     id="count-offline"),
            spacing="2", role="status",
        ),
        wrap="wrap", spacing="2", align="center", width="100%",
    )


def proctor_grid_page() -> rx.Component:
    return page_frame(
        keyboard_buttons(),
        rx.vstack(
            _filters(),
            _alerts(),
            _focus(),
            rx.grid(rx.foreach(ProctorGridState.tiles, _tile),
                    columns=rx.breakpoints(initial="2", sm="3", md="4", lg="5"), spacing="3", width="100%",
                    id="tiles"),
            rx.cond(ProctorGridState.total == 0,
                    rx.text("No attempt in progress matches.", id="no-live-attempts")),
            pager(ProctorGridState, "attempt", "attempts"),
            width="100%", spacing="4",
        ),
        title="Live proctoring",
    )
