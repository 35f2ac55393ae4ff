import reflex as rx


class ExamClock(rx.NoSSRComponent):
    """The countdown to the server's deadline (assets/exam_clock.js).

    Measures the clock offset against /api/time when it mounts and reports it through on_sync
    ({offset_ms, rtt_ms}, both null when /api/time did not answer); fires on_expire at zero,
    and again every 2 s while it stays mounted.
    """

    library = "$/public/exam_clock.js"
    tag = "ExamClock"

    deadline_ms: rx.Var[int]  # epoch ms on the server's clock; 0 before the start
    duration_s: rx.Var[int]
    label: rx.Var[str]  # what a screen reader calls it, in the page's language
    on_sync: rx.EventHandler[rx.event.passthrough_event_spec(dict)]
    on_expire: rx.EventHandler[rx.event.no_args_event_spec]


exam_clock = ExamClock.create
