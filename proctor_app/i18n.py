"""One catalogue for every user-visible text, and the locale's formats for numbers.

Texts are English msgids; each other language has a gettext catalogue in
locales/<lang>/LC_MESSAGES/messages.po, read with Babel when this module is imported (no compile
step to forget). Placeholders are Python-style `{name}`, the same in the pages, the services and the
browser's modules (assets/i18n.js), which all get their texts from here. Plain Python: no Reflex.
"""

from pathlib import Path

from babel.messages.pofile import read_po
from babel.numbers import format_decimal

DEFAULT_LANGUAGE = "en"
# The languages offered, each named in itself (the switch lists them so).
LANGUAGES = {"en": "English", "es": "Español"}
# The language switch's choice (state/locale.py); HTTP routes read it too.
LANGUAGE_COOKIE = "proctor_lang"
LOCALES_DIR = Path(__file__).parent / "locales"
CATALOGUE_FILE = "LC_MESSAGES/messages.po"


def _read_catalogue(lang: str) -> dict[str, str]:
    with open(LOCALES_DIR / lang / CATALOGUE_FILE, "rb") as po:
        # Untranslated and fuzzy entries fall back to English.
        return {m.id: m.string for m in read_po(po) if m.id and m.string and not m.fuzzy}


CATALOGUES = {lang: _read_catalogue(lang) for lang in LANGUAGES if lang != DEFAULT_LANGUAGE}


def N_(msgid: str) -> str:
    """Marks a text for the catalogue where it is defined; it is translated where it is shown."""
    return msgid


def gettext(lang: str, msgid: str, **params) -> str:
    """`msgid` in `lang` (English when it has no translation), with `params` filled in."""
    text = CATALOGUES.get(lang, {}).get(msgid, msgid)
    return text.format(**params) if params else text


def texts(lang: str) -> dict[str, str]:
    """Every translated text of `lang` by msgid, for the browser (it shows the msgid for others)."""
    return CATALOGUES.get(lang, {})


def supported(lang: str) -> bool:
    return lang in LANGUAGES


def visitor_language(chosen: str, accept_language: str) -> str:
    """The language the visitor chose on the switch (its cookie), else their browser's."""
    return chosen if supported(chosen) else pick_language(accept_language)


def pick_language(accept_language: str) -> str:
    """The first language of an Accept-Language header (by its q-values) that the app speaks."""
    ranked = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        ranked.append((-weight, position, tag.strip().split("-")[0].lower()))
    return next((lang for _, _, lang in sorted(ranked) if supported(lang)), DEFAULT_LANGUAGE)


def format_number(lang: str, number: int | float) -> str:
    """A number as the language writes it (grouping and decimal marks)."""
    return format_decimal(number, locale=lang)
