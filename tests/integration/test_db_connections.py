"""Pooled PostgreSQL connections: one the server ended (a restart, pg_terminate_backend, an idle
timeout) is never handed to a request."""

import pytest
import sqlalchemy as sa

from proctor_app.db import engine_for
from tests.support.polling import wait_for
from tests.support.postgres import POSTGRES_URL

pytestmark = pytest.mark.postgres


def backend_pid(conn) -> int:
    return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_the_server_ended_is_replaced_not_used(pg_url):
    engine = engine_for(pg_url)
    with engine.connect() as conn:
        ended = backend_pid(conn)
    assert engine.pool.checkedin() == 1
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": ended}).scalar_one()
            wait_for(lambda: not conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                              {"pid": ended}).scalar_one(), 10, "the backend gone")
    finally:
        admin.dispose()
    with engine.connect() as conn:
        assert backend_pid(conn) != ended
