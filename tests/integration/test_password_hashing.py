"""A platform hashes passwords with argon2-cffi's default parameters (RFC 9106's second
choice). The other in-process tests hash with the cheapest ones (tests/conftest.py), so
this test says the defaults are what a real platform uses."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from telerad.bootstrap import Platform
from telerad.domain.identity import Role

PASSWORD = "correct horse battery"


@pytest.mark.real_password_hashing
def test_a_platform_hashes_with_argon2_defaults(platform: Platform) -> None:
    defaults = PasswordHasher()
    platform.auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    user = platform.auth.identity.user_by_name("rad")
    assert user is not None
    stored, _ = platform.auth.identity.credentials(user.id)
    parameters = f"m={defaults.memory_cost},t={defaults.time_cost},p={defaults.parallelism}"
    assert stored is not None and stored.startswith(f"$argon2id$v=19${parameters}$")
    assert platform.auth.sign_in("rad", PASSWORD, None).username == "rad"


def test_the_other_tests_hash_with_the_cheapest_parameters(platform: Platform) -> None:
    platform.auth.create_user("rad", Role.RADIOLOGIST, password=PASSWORD)
    user = platform.auth.identity.user_by_name("rad")
    assert user is not None
    stored, _ = platform.auth.identity.credentials(user.id)
    assert stored is not None and stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
