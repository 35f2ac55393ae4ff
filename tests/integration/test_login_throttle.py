"""The sign-in throttle's windows on both storages it runs on (memory, and the Redis server of
the test machines at 127.0.0.1:6379, as with REFLEX_REDIS_URL)."""

import uuid

import pytest

from proctor_app.auth.throttle import (
    PER_ACCOUNT,
    PER_ACCOUNT_AND_ADDRESS,
    PER_ADDRESS,
    LoginThrottle,
    Throttled,
)


@pytest.fixture(params=["memory://", "redis://127.0.0.1:6379"])
def throttle(request) -> LoginThrottle:
    return LoginThrottle(request.param)


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


def fail(throttle: LoginThrottle, email: str, address: str, times: int) -> None:
    for _ in range(times):
        throttle.check(email, address)
        throttle.failed(email, address)


def test_an_account_and_address_pair_is_throttled_alone(throttle):
    email, attacker, owner = fresh("user@x"), fresh("addr"), fresh("addr")
    fail(throttle, email, attacker, PER_ACCOUNT_AND_ADDRESS.amount)
    with pytest.raises(Throttled) as throttled:
        throttle.check(email.upper(), attacker)  # the same account, however spelled
    assert 0 < throttled.value.retry_after_s <= 15 * 60 + 1
    throttle.check(email, owner)
    throttle.check(fresh("other@x"), attacker)


def test_a_success_clears_its_pair_only(throttle):
    email, address = fresh("user@x"), fresh("addr")
    fail(throttle, email, address, PER_ACCOUNT_AND_ADDRESS.amount - 1)
    throttle.succeeded(email, address)
    fail(throttle, email, address, PER_ACCOUNT_AND_ADDRESS.amount - 1)
    throttle.check(email, address)


def test_an_address_guessing_many_accounts_is_throttled(throttle):
    address = fresh("addr")
    for _ in range(PER_ADDRESS.amount):
        fail(throttle, fresh("user@x"), address, 1)
    with pytest.raises(Throttled):
        throttle.check(fresh("user@x"), address)


def test_many_addresses_guessing_one_account_meet_its_ceiling(throttle):
    email = fresh("user@x")
    per_address = PER_ACCOUNT_AND_ADDRESS.amount
    for _ in range(PER_ACCOUNT.amount // per_address):
        fail(throttle, email, fresh("addr"), per_address)
    with pytest.raises(Throttled):
        throttle.check(email, fresh("addr"))
