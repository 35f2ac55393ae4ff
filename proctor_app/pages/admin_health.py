"""The Health page: alerts standing now, and charts of the platform's figures over time."""

import reflex as rx

from proctor_app.components.local_time import local_time, local_time_or
from proctor_app.pages.layout import page_frame
from proctor_app.state.admin_health import SPANS, AdminHealthState, AlertRow

# (chart id, title, point key, unit)
CHARTS = [
    ("chart-success", "Processing success (last hour, %)", "success_pct", "%"),
    ("chart-processing", "Processing time (p95 over the last hour, s)", "processing_s", "s"),
    ("chart-queue", "Oldest waiting job (min)", "queue_wait_min", "min"),
    ("chart-storage", "Storage in use (GB)", "storage_gb", "GB"),
    ("chart-disk", "Free disk (%)", "disk_free_pct", "%"),
    ("chart-webhooks", "Webhook tries acknowledged (last hour, %)", "webhook_pct", "%"),
]


def _alert(alert: AlertRow) -> rx.Component:
    return rx.callout(rx.text(alert.message, " (since ", local_time(iso=alert.since), ")"), color_scheme="red",
                      icon="triangle_alert", id="alert-" + alert.key)


def _alerts() -> rx.Component:
    return rx.vstack(
        rx.cond(AdminHealthState.alerts.length() > 0,
                rx.foreach(AdminHealthState.alerts, _alert),
                rx.callout("No alerts: every figure is within its limit.", color_scheme="green",
                           id="no-alerts")),
        width="100%", spacing="2", id="alerts",
    )


def _chart(chart_id: str, title: str, key: str, unit: str) -> rx.Component:
    return rx.card(
        rx.text(title, weight="bold"),
        rx.recharts.line_chart(
            rx.recharts.cartesian_grid(stroke_dasharray="3 3"),
            rx.recharts.x_axis(data_key="time", min_tick_gap=30),
            rx.recharts.y_axis(unit=unit, width=70),
            rx.recharts.graphing_tooltip(),
            rx.recharts.line(data_key=key, stroke="var(--accent-9)", dot=False, connect_nulls=False,
                             is_animation_active=False, name=title),
            data=AdminHealthState.points, width="100%", height=220,
        ),
        id=chart_id, width="100%",
    )


def admin_health_page() -> rx.Component:
    return page_frame(
        rx.vstack(
            _alerts(),
            rx.hstack(
                rx.select(list(SPANS), value=AdminHealthState.span, on_change=AdminHealthState.choose_span,
                          id="health-span", custom_attrs={"aria-label": "Time span"}),
                rx.button("Refresh", on_click=AdminHealthState.refresh, variant="soft", id="health-refresh"),
                rx.text("Latest sample: ", local_time_or(AdminHealthState.latest_sample, "none yet"), size="2",
                        id="latest-sample"),
                align="center", spacing="3",
            ),
            rx.grid(*[_chart(*chart) for chart in CHARTS], columns="2", spacing="4", width="100%"),
            width="100%", spacing="4",
        ),
        title="Health",
    )
