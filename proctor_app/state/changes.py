"""What an admin page does with a change: run it in a transaction of its own, then show its message
and reload the page's rows, or show the rule it broke and leave the page (and its form) as it is."""

import asyncio
from collections.abc import Callable

from sqlmodel import Session

from proctor_app.db import session_scope


async def apply_change(state, change: Callable[[Session], str], refused: tuple[type[Exception], ...]) -> bool:
    """Run `change` in a thread (password hashing and the like stay off the event loop); `state` has
    `error`, `notice` and `_reload`. False when it raised one of `refused`."""
    def run() -> str:
        with session_scope() as db:
            return change(db)

    try:
        message = await asyncio.to_thread(run)
    except refused as exc:
        state.error, state.notice = str(exc), ""
        return False
    state.error, state.notice = "", message
    state._reload()
    return True
