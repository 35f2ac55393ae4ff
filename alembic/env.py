from alembic import context
from sqlalchemy import pool
from sqlmodel import SQLModel, create_engine

import proctor_app.models  # noqa: F401  (registers every table on SQLModel.metadata)
from proctor_app.config import config as app_config

url = context.config.get_main_option("sqlalchemy.url") or app_config.database_url
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
