"""The page's language: the candidate's choice on the language switch (a cookie), else the
browser's Accept-Language. Every page state inherits it, so handlers write their texts in it."""

import json

import reflex as rx

from proctor_app import i18n

ONE_YEAR_S = 365 * 24 * 3600


class LocaleState(rx.State):
    lang: str = i18n.DEFAULT_LANGUAGE
    chosen_lang: str = rx.Cookie("", name=i18n.LANGUAGE_COOKIE, path="/", max_age=ONE_YEAR_S, same_site="strict")

    @rx.var
    def texts(self) -> dict[str, str]:
        return i18n.texts(self.lang)

    def _t(self, msgid: str, **params) -> str:
        return i18n.gettext(self.lang, msgid, **params)

    def _mark_page(self):
        """The page's <html lang>: screen readers pronounce the page in its language."""
        return rx.call_script(f"document.documentElement.lang = {json.dumps(self.lang)}")

    # No sign-in needed: the language is the visitor's own preference.
    def pick_language(self):
        """On every page load: the switch's choice, else the browser's languages."""
        self.lang = i18n.visitor_language(self.chosen_lang, self.router.headers.accept_language)
        return self._mark_page()

    def choose_language(self, lang: str):
        if i18n.supported(lang):
            self.lang = self.chosen_lang = lang
            return self._mark_page()
        return None

