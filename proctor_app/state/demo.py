import reflex as rx

from proctor_app.demo import demo_mode


class DemoState(rx.State):
    """Whether the server runs with the demo data (PROCTOR_DEMO=1), for the banner on every page.
    Read on the server, so a build made without the variable still shows it when run with it."""

    @rx.var(cache=False)
    def demo(self) -> bool:
        return demo_mode()
