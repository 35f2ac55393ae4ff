import reflex as rx


class LocalTime(rx.NoSSRComponent):
    """An instant in the viewer's time zone, UTC on hover (assets/local_time.js).

    `iso` is UTC ISO 8601 (services.review.iso_time; "" shows nothing); `lang` the page's language
    for the date's words and order, or unset for the browser's own. Rendered in the browser only:
    the server knows neither the time zone nor the browser's locale.
    """

    library = "$/public/local_time.js"
    tag = "LocalTime"

    iso: rx.Var[str]
    lang: rx.Var[str]


local_time = LocalTime.create


def local_time_or(iso: rx.Var[str], missing: str) -> rx.Component:
    """`iso` as a local_time, or the text `missing` when there is no instant ("")."""
    return rx.cond(iso != "", local_time(iso=iso), missing)
