import reflex as rx


class DeviceCheck(rx.NoSSRComponent):
    """Camera and microphone preview with a level meter (assets/device_check.js).

    Reports once per `round` through on_result: {ok, error, error_name, width, height, camera,
    microphone}; a new `round` value runs the check again.
    """

    library = "$/public/device_check.js"
    tag = "DeviceCheck"

    round: rx.Var[int]
    on_result: rx.EventHandler[rx.event.passthrough_event_spec(dict)]


device_check = DeviceCheck.create
