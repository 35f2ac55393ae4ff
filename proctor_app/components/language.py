"""Texts in the page's language (proctor_app/i18n.py) for components, and the language switch."""

import reflex as rx

from proctor_app import i18n
from proctor_app.state.locale import LocaleState


def t(msgid: str, **params) -> rx.Var[str]:
    """`msgid` in the page's language, for a component; `params` (vars or values) fill its
    `{name}` placeholders in the browser."""
    text = LocaleState.texts.get(msgid, msgid).to(str)
    for name, value in params.items():
        text = text.replace("{" + name + "}", rx.Var.create(value).to_string(use_json=False))
    return text


def language_switch(on_switched=None) -> rx.Component:
    """English / Español; `on_switched` (an event handler without arguments) redraws what the
    page's state wrote in the old language."""
    return rx.select.root(
        rx.select.trigger(aria_label="Language", id="language-switch"),
        rx.select.content(*[rx.select.item(name, value=lang, id=f"language-{lang}")
                            for lang, name in i18n.LANGUAGES.items()]),
        value=LocaleState.lang,
        on_change=lambda lang: [LocaleState.choose_language(lang), *([on_switched] if on_switched else [])],
        size="1",
    )
