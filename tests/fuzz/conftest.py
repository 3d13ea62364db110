"""Property-based tests of everything that stores input from outside, on the real storing code.

Example counts are moderate so the suite stays under a minute per CI lane; raise them for a
longer hunt with FUZZ_EXAMPLES=500 (the profile below reads it)."""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "hub-fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,  # no example database written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _dispatch_inline(inline_dispatch):
    """Every test here dispatches in its own thread, without jitter (tests/shared_fixtures.py)."""
