"""Database engine and sessions (plain SQLModel, usable without Reflex)."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine

from proctor_app.config import PROJECT_ROOT, config
from proctor_app.platform import has_input


@lru_cache(maxsize=None)
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        # A connection per upload thread stays open: opening one costs more than the query.
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                            pool_size=40, max_overflow=20)

        @event.listens_for(eng, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            # WAL lets readers proceed while uploads write; FULL syncs the WAL on every commit (an
            # upload is acknowledged once committed); foreign keys are off by default.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return eng
    # LIFO: a request takes the connection used last, whose statements psycopg has prepared
    # (after five runs on that connection), instead of rotating through the whole pool.
    eng = create_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True)

    # Instead of pool_pre_ping's SELECT 1 at every checkout (a round trip, 0.1 ms of a 1.1 ms API
    # page in bench/api.py): an idle connection's socket has something to read only when the
    # server spoke first, which it does when it ends the session (restart, terminate, idle
    # timeout); such a connection is dropped and the pool takes another or opens one.
    @event.listens_for(eng, "checkout")
    def _drop_if_closed_by_server(dbapi_conn, _record, _proxy):
        if has_input(dbapi_conn.fileno()):
            raise DisconnectionError("the database server closed this connection")

    return eng


def get_engine() -> Engine:
    return engine_for(config.database_url)


SessionFactory = Callable[[], AbstractContextManager[Session]]


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def connection_scope() -> Iterator[Connection]:
    """A plain connection in a transaction that commits on success: for hot paths without the ORM."""
    with get_engine().begin() as conn:
        yield conn


@contextmanager
def read_scope() -> Iterator[Connection]:
    """A plain connection in autocommit, for one read statement on a hot path: a lone statement
    sees one snapshot anyway, and BEGIN and COMMIT would be two more round trips to the database."""
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


# Several app processes start at once with Redis; on PostgreSQL they take turns setting up.
STARTUP_LOCK_KEY = 7_411_001


@contextmanager
def startup_lock(url: str | None = None) -> Iterator[None]:
    """Held while one process migrates and seeds; the others wait (PostgreSQL advisory lock).
    SQLite needs none: without Redis, Reflex runs a single worker."""
    url = url or config.database_url
    if not url.startswith("postgresql"):
        yield
        return
    with engine_for(url).connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK_KEY})
        try:
            yield
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK_KEY})


def migrate(url: str | None = None) -> None:
    """Upgrade the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    url = url or config.database_url
    cfg = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    # ConfigParser treats % as interpolation; URLs may carry %-escapes.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")
