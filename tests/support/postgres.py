"""PostgreSQL schemas of a test's own on the shared server (127.0.0.1:5432, database `test`)."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from proctor_app.db import engine_for, migrate

POSTGRES_URL = os.environ.get("PROCTOR_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_schema(label: str) -> Iterator[str]:
    """A PostgreSQL schema of the caller's own, migrated to head; yields its URL, drops it after.
    Tests on the shared server never meet each other's rows this way."""
    import sqlalchemy as sa

    schema = f"t_{label}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        migrate(url)
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
