from typing import Any

import reflex as rx


class AttemptPlayer(rx.NoSSRComponent):
    """An attempt's recordings side by side in sync, with speed, 5 s steps, keyboard shortcuts and
    a timeline of event markers (click to seek, hover for a sprite thumbnail) (assets/attempt_player.js).

    videos: [{stream, src, poster, offset}], the first one leads; markers: [{id, t, severity, label}];
    gaps: [{start, end}]; sprite: {url, interval, width, offset} or {}. Times are seconds on the
    attempt's timeline; elements with a data-seek-s attribute seek there when clicked.
    """

    library = "$/public/attempt_player.js"
    tag = "AttemptPlayer"

    videos: rx.Var[list[dict[str, Any]]]
    markers: rx.Var[list[dict[str, Any]]]
    gaps: rx.Var[list[dict[str, float]]]
    timeline_s: rx.Var[float]
    sprite: rx.Var[dict[str, Any]]


class EveryInterval(rx.NoSSRComponent):
    """Fires on_tick every `ms` milliseconds while mounted (assets/attempt_player.js)."""

    library = "$/public/attempt_player.js"
    tag = "EveryInterval"

    ms: rx.Var[int]
    on_tick: rx.EventHandler[rx.event.no_args_event_spec]


attempt_player = AttemptPlayer.create
every_interval = EveryInterval.create
