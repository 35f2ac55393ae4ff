"""Upload tokens: random per-attempt secrets (only their hash is stored), scoped to the attempt's
recorded streams and valid until its upload window closes or they are revoked. Issued by
services/uploads.py, revoked by services/revocation.py."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from proctor_app.auth.tokens import token_hash
from proctor_app.clock import Clock, system_clock
from proctor_app.db import connection_scope
from proctor_app.media.ingest.errors import IngestError
from proctor_app.models import UploadToken, utcnow


@dataclass(frozen=True)
class TokenScope:
    attempt_id: int
    streams: frozenset[str]
    expires_at: datetime
    revoked: bool = False


_TOKEN_SCOPE = select(UploadToken.attempt_id, UploadToken.streams, UploadToken.expires_at,
                      UploadToken.revoked_at).where(UploadToken.token_hash == bindparam("token_hash"))
# Bounds the cache; a full one starts again empty.
CACHE_MAX = 20_000
# A cached token is looked up again after this long. A revocation reaches the stores of the app
# process that made it at once (forget); this bounds how long the others, and tokens pruned from
# the database, still pass.
REVALIDATE_AFTER_S = 10.0


class TokenScopes:
    """Token lookups, cached for REVALIDATE_AFTER_S (expiry is checked on every use); `forget`
    drops tokens revoked meanwhile."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        self._scopes: dict[str, tuple[TokenScope, float]] = {}  # hash -> (scope, looked up at)
        # Bumped by every forget: a lookup that began before one does not cache its answer,
        # which may predate the revocation.
        self._forgets = 0

    def _fresh(self, digest: str) -> TokenScope | None:
        cached = self._scopes.get(digest)
        if cached is None or self.clock.monotonic() - cached[1] > REVALIDATE_AFTER_S:
            return None
        return cached[0]

    def cached(self, token: str | None) -> bool:
        """Whether `authorize` answers without the database: no token, or one looked up lately."""
        return not token or self._fresh(token_hash(token)) is not None

    def forget(self, token_hashes: Iterable[str]) -> None:
        """Look these tokens up again on their next use (they were revoked)."""
        self._forgets += 1
        for digest in token_hashes:
            self._scopes.pop(digest, None)

    def authorize(self, token: str | None, attempt_id: int, stream: str | None = None,
                  now: datetime | None = None) -> TokenScope:
        """The token's scope, if it may upload for this attempt (and stream); raises IngestError."""
        now = now or utcnow()
        if not token:
            raise IngestError(401, "token_missing", "An upload token is required.")
        digest = token_hash(token)
        scope = self._fresh(digest)
        if scope is None:
            forgets, looked_up_at = self._forgets, self.clock.monotonic()
            with connection_scope() as conn:
                row = conn.execute(_TOKEN_SCOPE, {"token_hash": digest}).first()
            if row is None:
                self._scopes.pop(digest, None)
                raise IngestError(401, "token_unknown", "The upload token is not valid.")
            scope = TokenScope(row.attempt_id, frozenset(row.streams), row.expires_at,
                               row.revoked_at is not None)
            if forgets == self._forgets:
                if len(self._scopes) >= CACHE_MAX:
                    self._scopes.clear()
                self._scopes[digest] = (scope, looked_up_at)
        if scope.revoked:
            raise IngestError(403, "token_revoked",
                              "Access to this attempt was withdrawn; uploads are no longer accepted.")
        if scope.expires_at <= now:
            raise IngestError(401, "token_expired", "The upload token has expired.")
        if scope.attempt_id != attempt_id:
            raise IngestError(403, "token_foreign", "The upload token belongs to another attempt.")
        if stream is not None and stream not in scope.streams:
            raise IngestError(403, "stream_not_allowed",
                              f"This attempt does not record the {stream} stream.")
        return scope
