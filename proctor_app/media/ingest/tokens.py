"""Upload tokens: random per-attempt secrets (only their hash is stored), scoped to the attempt's
recorded streams and valid until its upload window closes or they are revoked. Issued by
services/uploads.py, revoked by services/revocation.py."""

import threading
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


_TOKEN_SCOPES = select(UploadToken.token_hash, UploadToken.attempt_id, UploadToken.streams,
                       UploadToken.expires_at, UploadToken.revoked_at).where(
    UploadToken.token_hash.in_(bindparam("token_hashes", expanding=True)))
# Bounds the cache; a full one starts again empty.
CACHE_MAX = 20_000
# A cached token is looked up again after this long. A revocation reaches the stores of the app
# process that made it at once (forget); this bounds how long the others, and tokens pruned from
# the database, still pass.
REVALIDATE_AFTER_S = 10.0
# A lookup also looks up again, in the same query, the cached tokens older than this (at most
# LOOKUP_BATCH): with a thousand candidates each token came due every few of its chunks, one
# query each; so they come due together, a query every few seconds for all of them.
REFRESH_AFTER_S = REVALIDATE_AFTER_S / 2
LOOKUP_BATCH = 500


class TokenScopes:
    """Token lookups, cached for REVALIDATE_AFTER_S (expiry is checked on every use); `forget`
    drops tokens revoked meanwhile."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.clock = clock
        # hash -> (scope, looked up at), oldest lookup first (a lookup moves its tokens last)
        self._scopes: dict[str, tuple[TokenScope, float]] = {}
        self._changing = threading.Lock()  # upload threads look tokens up side by side
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
        with self._changing:
            self._forgets += 1
            for digest in token_hashes:
                self._scopes.pop(digest, None)

    def _look_up(self, digest: str) -> TokenScope | None:
        """The token's scope from the database (None: no such token), and those of the cached
        tokens due for a lookup soon, cached anew."""
        with self._changing:
            forgets, looked_up_at = self._forgets, self.clock.monotonic()
            digests = [digest]
            for cached, (_, at) in self._scopes.items():
                if looked_up_at - at <= REFRESH_AFTER_S or len(digests) >= LOOKUP_BATCH:
                    break
                if cached != digest:
                    digests.append(cached)
        with connection_scope() as conn:
            rows = conn.execute(_TOKEN_SCOPES, {"token_hashes": digests}).all()
        scopes = {row.token_hash: TokenScope(row.attempt_id, frozenset(row.streams), row.expires_at,
                                             row.revoked_at is not None) for row in rows}
        with self._changing:
            if forgets == self._forgets:
                if len(self._scopes) + len(scopes) > CACHE_MAX:
                    self._scopes.clear()
                for looked_up in digests:  # gone from the database: looked up on their next use
                    self._scopes.pop(looked_up, None)
                    if looked_up in scopes:
                        self._scopes[looked_up] = (scopes[looked_up], looked_up_at)
        return scopes.get(digest)

    def authorize(self, token: str | None, attempt_id: int, stream: str | None = None,
                  now: datetime | None = None) -> TokenScope:
        """The token's scope, if it may upload for this attempt (and stream); raises IngestError."""
        now = now or utcnow()
        if not token:
            raise IngestError(401, "token_missing", "An upload token is required.")
        digest = token_hash(token)
        scope = self._fresh(digest) or self._look_up(digest)
        if scope is None:
            raise IngestError(401, "token_unknown", "The upload token is not valid.")
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
