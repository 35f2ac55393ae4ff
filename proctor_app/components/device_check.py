import reflex as rx


class DeviceCheck(rx.NoSSRComponent):
    """Camera and microphone preview with a level meter (assets/device_check.js).

    Reports once per `round` through on_result: {ok, error, error_name, width, height, camera,
    microphone}, its error in the language of `messages`; a new `round` value runs the check again.
    """

    library = "$/public/device_check.js"
    tag = "DeviceCheck"

    round: rx.Var[int]
    messages: rx.Var[dict[str, str]]  # the page's language's texts (assets/i18n.js)
    on_result: rx.EventHandler[rx.event.passthrough_event_spec(dict)]


device_check = DeviceCheck.create
