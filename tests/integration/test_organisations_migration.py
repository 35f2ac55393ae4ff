"""Migration 0004 (organisations) on a database that has data from before organisations: everything lands in the
default organisation, admins become install admins, and new rows default to it as well."""

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from proctor_app.config import PROJECT_ROOT
from proctor_app.db import engine_for
from proctor_app.models import DEFAULT_ORGANISATION_ID


def _alembic(url: str) -> AlembicConfig:
    cfg = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def test_existing_rows_move_into_the_default_organisation(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = _alembic(url)
    command.upgrade(cfg, "0003")
    engine = engine_for(url)
    with engine.begin() as conn:
        for email, role in (("boss@example.com", "admin"), ("cand@example.com", "candidate")):
            conn.execute(sa.text("INSERT INTO users (email, name, role, password_hash, active, created_at, "
                                 "failed_logins) VALUES (:e, 'x', :r, 'h', true, '2026-01-01', 0)"),
                         {"e": email, "r": role})
        conn.execute(sa.text(
            "INSERT INTO exams (title, description, duration_minutes, live_video, recording, screen_recording,"
            " recording_required, snapshot_interval_s, created_at, updated_at)"
            " VALUES ('Old exam', '', 30, true, true, false, true, 60, '2026-01-01', '2026-01-01')"))
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, slug FROM organisations")).all() == [(DEFAULT_ORGANISATION_ID, "default")]
        assert conn.execute(sa.text("SELECT organisation_id, api_session FROM exams")).all() == [(1, False)]
        users = dict(conn.execute(sa.text("SELECT email, organisation_id || ':' || is_install_admin FROM users")).all())
        assert users == {"boss@example.com": "1:1", "cand@example.com": "1:0"}
    command.downgrade(cfg, "0003")
    with engine.connect() as conn:
        assert "organisations" not in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("SELECT count(*) FROM exams")).scalar() == 1
    engine.dispose()
