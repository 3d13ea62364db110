"""Property-based tests of everything that stores input from outside, on the real storing code.

Example counts are moderate so the suite stays under a minute per CI lane; raise them for a
longer hunt with FUZZ_EXAMPLES=500 (the profile below reads it)."""
import os

from hypothesis import HealthCheck, settings

from tests.recording import bindings, feed, inline_dispatch, oms, recorder  # noqa: F401

settings.register_profile(
    "hub-fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,  # no example database written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
