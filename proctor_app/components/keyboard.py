"""Keyboard use of mouse-only controls (assets/keyboard_buttons.js): Enter and Space click the
elements given KEY_ACTIVATES, Escape clicks the (one) button given ESCAPE_CLICKS."""

import reflex as rx

# Attributes (custom_attrs) of the elements the keyboard handler acts on.
KEY_ACTIVATES = {"data-key-activates": "true"}
ESCAPE_CLICKS = {"data-escape-clicks": "true"}


class KeyboardButtons(rx.NoSSRComponent):
    """Mounted once on a page that uses KEY_ACTIVATES or ESCAPE_CLICKS; renders nothing."""

    library = "$/public/keyboard_buttons.js"
    tag = "KeyboardButtons"


keyboard_buttons = KeyboardButtons.create
