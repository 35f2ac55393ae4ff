"""Upload tokens: random per-attempt secrets (only their hash is stored), scoped to the attempt's
recorded streams and valid until its upload window closes. Issued by services/uploads.py."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from proctor_app.auth.tokens import token_hash
from proctor_app.db import connection_scope
from proctor_app.media.ingest.errors import IngestError
from proctor_app.models import UploadToken, utcnow

@dataclass(frozen=True)
class TokenScope:
    attempt_id: int
    streams: frozenset[str]
    expires_at: datetime


_TOKEN_SCOPE = select(UploadToken.attempt_id, UploadToken.streams, UploadToken.expires_at).where(
    UploadToken.token_hash == bindparam("token_hash"))
# Bounds the cache; a full one starts again empty.
CACHE_MAX = 20_000


class TokenScopes:
    """Token lookups, cached: token rows never change after they are written (expiry is checked
    on every use)."""

    def __init__(self) -> None:
        self._scopes: dict[str, TokenScope] = {}

    def cached(self, token: str | None) -> bool:
        """Whether `authorize` answers without the database: no token, or a token looked up before."""
        return not token or token_hash(token) in self._scopes

    def authorize(self, token: str | None, attempt_id: int, stream: str | None = None,
                  now: datetime | None = None) -> TokenScope:
        """The token's scope, if it may upload for this attempt (and stream); raises IngestError."""
        now = now or utcnow()
        if not token:
            raise IngestError(401, "token_missing", "An upload token is required.")
        digest = token_hash(token)
        scope = self._scopes.get(digest)
        if scope is None:
            with connection_scope() as conn:
                row = conn.execute(_TOKEN_SCOPE, {"token_hash": digest}).first()
            if row is None:
                raise IngestError(401, "token_unknown", "The upload token is not valid.")
            scope = TokenScope(row.attempt_id, frozenset(row.streams), row.expires_at)
            if len(self._scopes) >= CACHE_MAX:
                self._scopes.clear()
            self._scopes[digest] = scope
        if scope.expires_at <= now:
            raise IngestError(401, "token_expired", "The upload token has expired.")
        if scope.attempt_id != attempt_id:
            raise IngestError(403, "token_foreign", "The upload token belongs to another attempt.")
        if stream is not None and stream not in scope.streams:
            raise IngestError(403, "stream_not_allowed",
                              f"This attempt does not record the {stream} stream.")
        return scope
