"""Wrong-password throttling with the `limits` library (Redis when configured, else memory).

Only failures count, in three moving windows of 15 minutes:
- per (account, client address): 10. Someone else's failures on an account never stop its owner
  signing in from their own address, so a stranger cannot keep a candidate out at exam time;
- per client address: 30, over all accounts (guessing many accounts from one place);
- per account: 300 over all addresses, a ceiling against guessing one account from many places
  (it takes 10 addresses at their own limit to reach it).
A success clears its (account, address) window. Unknown emails are counted the same way.
"""

import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute, storage
from limits.strategies import MovingWindowRateLimiter

WINDOW_MINUTES = 15
PER_ACCOUNT_AND_ADDRESS = RateLimitItemPerMinute(10, WINDOW_MINUTES, namespace="login-pair")
PER_ADDRESS = RateLimitItemPerMinute(30, WINDOW_MINUTES, namespace="login-address")
PER_ACCOUNT = RateLimitItemPerMinute(300, WINDOW_MINUTES, namespace="login-account")


@dataclass(frozen=True)
class Throttled(Exception):
    retry_after_s: int


class LoginThrottle:
    def __init__(self, storage_uri: str = "memory://"):
        self._limiter = MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    def _windows(self, email: str, address: str):
        account = email.strip().lower()
        return [(PER_ACCOUNT_AND_ADDRESS, (account, address)), (PER_ADDRESS, (address,)),
                (PER_ACCOUNT, (account,))]

    def check(self, email: str, address: str) -> None:
        """Raises Throttled (with the seconds until the fullest window frees a place) when any
        window is full."""
        waits = [self._limiter.get_window_stats(item, *keys).reset_time - time.time()
                 for item, keys in self._windows(email, address)
                 if not self._limiter.test(item, *keys)]
        if waits:
            raise Throttled(max(1, int(max(waits)) + 1))

    def failed(self, email: str, address: str) -> None:
        for item, keys in self._windows(email, address):
            self._limiter.hit(item, *keys)

    def succeeded(self, email: str, address: str) -> None:
        item, keys = self._windows(email, address)[0]
        self._limiter.clear(item, *keys)
