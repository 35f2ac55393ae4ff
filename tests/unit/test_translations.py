"""The catalogue: every text of the candidate's pages has its Spanish translation, with the same
placeholders; the language a browser asks for; English where a text has no translation."""

import re

import pytest

from proctor_app import i18n
from proctor_app.messages import used_texts
from proctor_app.services.consent import CapturePlan, consent_lines

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_text_of_the_candidate_pages_is_translated():
    used = used_texts()
    assert len(used) > 100  # the extraction finds the pages', states', services' and modules' texts
    missing = {msgid: where for msgid, where in used.items() if msgid not in i18n.CATALOGUES["es"]}
    assert not missing, f"untranslated (run python -m proctor_app.messages, then translate): {missing}"


def test_translations_keep_the_placeholders():
    for msgid, text in i18n.CATALOGUES["es"].items():
        assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(msgid)), msgid


@pytest.mark.parametrize(("header", "lang"), [
    ("es-ES,es;q=0.9,en;q=0.8", "es"),
    ("en-GB,es;q=0.5", "en"),
    ("fr-FR,es;q=0.7,en;q=0.3", "es"),
    ("de, fr;q=0.5", "en"),
    ("", "en"),
    ("es;q=bad, en", "en"),
])
def test_the_language_is_the_first_the_app_speaks(header, lang):
    assert i18n.pick_language(header) == lang


def test_untranslated_texts_and_unknown_languages_fall_back_to_english():
    assert i18n.gettext("es", "Question {number} of {total}", number=2, total=5) == "Pregunta 2 de 5"
    assert i18n.gettext("es", "Not in the catalogue {n}", n=1) == "Not in the catalogue 1"
    assert i18n.gettext("fr", "Submit") == "Submit"


def test_the_consent_text_is_in_the_candidates_language_with_its_numbers():
    plan = CapturePlan(camera_recording=True, screen_recording=False, live_video=False, required=True,
                       snapshots=True, snapshot_interval_s=90)
    spanish = consent_lines(plan, 30, "es")
    assert spanish[0] == "Tu cámara (vídeo) y tu micrófono (audio) se graban durante todo el examen."
    assert "cada 90 segundos" in spanish[1]
    assert "30 días" in spanish[-1]
    assert consent_lines(plan, 30)[-1].startswith("Recordings and snapshots are deleted automatically 30 days")
    assert i18n.format_number("es", 12345.5) == "12.345,5"
    assert i18n.format_number("en", 12345.5) == "12,345.5"
