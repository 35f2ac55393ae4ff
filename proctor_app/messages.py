"""The catalogue's texts as the code uses them: `python -m proctor_app.messages` adds the texts
new in the code to each language's .po (untranslated, so they show in English until translated)
and drops those the code no longer uses, keeping every translation that still applies.

Texts are found by the calls that carry them: t() in the pages and the browser's modules, self._t()
in the page states, gettext(lang, ...) in the services, N_() where a text is defined away from
where it is shown, and AttemptError(...) whose message the candidate's page shows.
"""

from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po, write_po

from proctor_app.i18n import CATALOGUE_FILE, DEFAULT_LANGUAGE, LANGUAGES, LOCALES_DIR

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"t": None, "_t": None, "N_": None, "gettext": (2,), "AttemptError": None}
# The candidate's pages and what they show: each of their texts has every language's translation.
CANDIDATE_SOURCES = (
    "proctor_app/pages/layout.py", "proctor_app/pages/candidate_home.py", "proctor_app/pages/take_exam.py",
    "proctor_app/pages/exam_recording.py", "proctor_app/pages/exam_live.py", "proctor_app/pages/api_session.py",
    "proctor_app/state/candidate_home.py", "proctor_app/state/take_exam.py", "proctor_app/state/exam_live.py",
    "proctor_app/services/consent.py", "proctor_app/services/attempts.py",
    "proctor_app/pages/login.py", "proctor_app/api/auth.py", "proctor_app/auth/sessions.py",
    "assets/device_check.js", "assets/device_probe.js", "assets/recorder_view.js", "assets/recorder_session.js",
    "assets/recorder_stream.js", "assets/upload_queue.js",
)


def used_texts(sources: Iterable[str] = CANDIDATE_SOURCES) -> dict[str, list[tuple[str, int]]]:
    """Each msgid the sources use, with where (file, line)."""
    found: dict[str, list[tuple[str, int]]] = {}
    for source in sources:
        method = "javascript" if source.endswith(".js") else "python"
        with open(ROOT / source, "rb") as code:
            for line, message, _comments, _context in extract(method, code, keywords=KEYWORDS):
                if isinstance(message, str):
                    found.setdefault(message, []).append((source, line))
    return found


def update_catalogues() -> None:
    texts = used_texts()
    for lang in LANGUAGES:
        if lang == DEFAULT_LANGUAGE:
            continue
        path = LOCALES_DIR / lang / CATALOGUE_FILE
        with open(path, "rb") as po:
            old = read_po(po)
        # The header as it was: only the texts change.
        catalogue = Catalog(locale=lang, project="Proctor", version="", fuzzy=False,
                            header_comment=old.header_comment, creation_date=old.creation_date,
                            revision_date=old.revision_date, last_translator=old.last_translator,
                            language_team=old.language_team)
        for msgid, locations in sorted(texts.items()):
            known = old.get(msgid)
            catalogue.add(msgid, known.string if known else "", locations=locations,
                          flags=("python-brace-format",) if "{" in msgid else ())
        with open(path, "wb") as po:
            write_po(po, catalogue, width=100, omit_header=False)


if __name__ == "__main__":
    update_catalogues()
