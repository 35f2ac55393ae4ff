import asyncio

import reflex as rx

from proctor_app.db import session_scope, startup_lock
from proctor_app.services import accounts, first_run


class SetupState(rx.State):
    """/setup: the first administrator, while none exists, with the setup code from the log.
    Nobody is signed in here: every handler checks that set-up is still open (and the code)."""

    error: str = ""
    done: bool = False

    def on_load(self):
        self.error = ""
        self.done = False
        with session_scope() as db:
            is_open = first_run.setup_open(db)
        if not is_open:
            return rx.redirect("/login")

    async def submit(self, form: dict):
        def create() -> None:
            # One at a time (an advisory lock on PostgreSQL), so two forms cannot both pass the check.
            with startup_lock(), session_scope() as db:
                first_run.create_first_admin(
                    db, code=form.get("code", ""), email=form.get("email", ""),
                    name=form.get("name", ""), password=form.get("password", ""),
                    password_again=form.get("password_again", ""))

        try:
            # In a thread: the password is hashed (argon2), off the event loop.
            await asyncio.to_thread(create)
        except first_run.SetupError as exc:
            if str(exc) == first_run.SETUP_CLOSED:
                return rx.redirect("/login")
            self.error = str(exc)
            return
        except accounts.AccountError as exc:
            self.error = str(exc)
            return
        self.error = ""
        self.done = True
        return rx.redirect("/login")
