import reflex as rx

from proctor_app.api import build_api
from proctor_app.pages.login import IndexState, forbidden_page, index_page, login_page
from proctor_app.state.login import LoginState
from proctor_app.server import lifespan

app = rx.App(api_transformer=build_api())
app.register_lifespan_task(lifespan)

app.add_page(index_page, route="/", on_load=IndexState.on_load, title="Proctor")
app.add_page(login_page, route="/login", on_load=LoginState.on_load, title="Sign in")
app.add_page(forbidden_page, route="/forbidden", title="Not allowed")
