from typing import Any

import reflex as rx

# Installed into the page build by Reflex (bun, from npm) for assets/attempt_player.js.
HLS_JS = "hls.js@1.7.4"


class AttemptPlayer(rx.NoSSRComponent):
    """An attempt's recordings side by side in sync, with speed, 5 s steps, keyboard shortcuts and
    a timeline of event markers (click to seek, hover for a sprite thumbnail) (assets/attempt_player.js).

    videos: [{stream, src, hls, poster, offset}], the first one leads; `hls` (the master playlist's
    link, or "") plays through hls.js with a quality menu, else `src` (the MP4); markers: [{id, t, severity, label}];
    gaps: [{start, end}]; sprite: {url, interval, width, offset} or {}. Times are seconds on the
    attempt's timeline; elements with a data-seek-s attribute seek there when clicked.
    """

    library = "$/public/attempt_player.js"
    tag = "AttemptPlayer"
    lib_dependencies: list[str] = [HLS_JS]

    videos: rx.Var[list[dict[str, Any]]]
    markers: rx.Var[list[dict[str, Any]]]
    gaps: rx.Var[list[dict[str, float]]]
    timeline_s: rx.Var[float]
    sprite: rx.Var[dict[str, Any]]


class EveryInterval(rx.NoSSRComponent):
    """Fires on_tick every `ms` milliseconds while mounted (assets/attempt_player.js)."""

    library = "$/public/attempt_player.js"
    tag = "EveryInterval"
    lib_dependencies: list[str] = [HLS_JS]  # the module imports it

    ms: rx.Var[int]
    on_tick: rx.EventHandler[rx.event.no_args_event_spec]


attempt_player = AttemptPlayer.create
every_interval = EveryInterval.create
