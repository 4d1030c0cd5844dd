"""argon2id hashing and the password policy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.security import PasswordHasher, WeakPassword, check_password_policy
from safecity.security.passwords import DEFAULT_PROFILE, MIN_PASSWORD_LENGTH

GOOD = "correct horse battery staple"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher.cheap()


def test_hash_is_argon2id_and_verifies(hasher: PasswordHasher) -> None:
    hashed = hasher.hash(GOOD)
    assert hashed.startswith("$argon2id$")
    assert hasher.verify(hashed, GOOD)
    assert not hasher.verify(hashed, GOOD + "!")


def test_same_password_hashes_differently_each_time(hasher: PasswordHasher) -> None:
    assert hasher.hash(GOOD) != hasher.hash(GOOD)


@pytest.mark.parametrize(
    "garbage", ["", "not a hash", "$argon2id$v=19$m=8,t=1,p=1$garbage", "$2b$12$abcdefghijklmnopqrstuv", "ä€"]
)
def test_verify_returns_false_on_garbage_hashes(hasher: PasswordHasher, garbage: str) -> None:
    assert hasher.verify(garbage, GOOD) is False


def test_needs_rehash_when_parameters_change(hasher: PasswordHasher) -> None:
    cheap_hash = hasher.hash(GOOD)
    assert not hasher.needs_rehash(cheap_hash)
    assert PasswordHasher(DEFAULT_PROFILE).needs_rehash(cheap_hash)
    assert hasher.needs_rehash("garbage")


def test_default_profile_is_rfc9106_argon2id() -> None:
    profile = DEFAULT_PROFILE
    assert (profile.time_cost, profile.memory_cost, profile.parallelism) == (3, 65536, 4)


@pytest.mark.parametrize("password", ["", "short", "x" * (MIN_PASSWORD_LENGTH - 1), " " * 12, "a" * 2000])
def test_policy_refuses_weak_passwords(hasher: PasswordHasher, password: str) -> None:
    with pytest.raises(WeakPassword):
        hasher.hash(password)


def test_policy_refuses_password_containing_the_username() -> None:
    with pytest.raises(WeakPassword):
        check_password_policy("Dispatcher-2024!", username="dispatcher")
    check_password_policy("Dispatcher-2024!", username="operator7")


def test_policy_accepts_ten_characters() -> None:
    check_password_policy("x" * MIN_PASSWORD_LENGTH)


@settings(max_examples=25, deadline=None)
@given(password=st.text(min_size=MIN_PASSWORD_LENGTH, max_size=40).filter(str.strip), other=st.text(max_size=40))
def test_only_the_right_password_verifies(password: str, other: str) -> None:
    hasher = PasswordHasher.cheap()
    try:
        hashed = hasher.hash(password)
    except WeakPassword:  # lone surrogates are not text
        return
    assert hasher.verify(hashed, password)
    assert hasher.verify(hashed, other) == (other == password)
