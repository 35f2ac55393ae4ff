"""Live video in the browser (assets/live_components.js over live_publish.js and live_view.js)."""

import reflex as rx


class LiveVideo(rx.NoSSRComponent):
    """A <video> playing one live stream from its WHEP URL; re-attaches by itself.

    Reports through on_state: {state: connecting | playing | retrying | refused | stopped, detail}.
    """

    library = "$/public/live_components.js"
    tag = "LiveVideo"

    src: rx.Var[str]
    # RTCPeerConnection's configuration: iceServers, iceTransportPolicy.
    rtc_config: rx.Var[dict]
    # Also receive the attempt's sound, and play it (otherwise the video is muted).
    audio: rx.Var[bool]
    on_state: rx.EventHandler[rx.event.passthrough_event_spec(dict)]


class LivePublish(rx.NoSSRComponent):
    """Publishes the candidate's camera (full and low resolution), and the screen when `screen`
    is set, to its WHIP URL with the attempt's upload token, reconnecting by itself. Renders
    nothing. Reports through on_status: {status: connecting | live | retrying | refused |
    stopped, detail}.
    """

    library = "$/public/live_components.js"
    tag = "LivePublish"

    url: rx.Var[str]
    token: rx.Var[str]
    screen: rx.Var[bool]
    rtc_config: rx.Var[dict]
    audio: rx.Var[bool]  # publish the microphone too
    on_status: rx.EventHandler[rx.event.passthrough_event_spec(dict)]


live_video = LiveVideo.create
live_publish = LivePublish.create
