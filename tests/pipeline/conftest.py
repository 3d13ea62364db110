import pytest


@pytest.fixture(autouse=True)
def _dispatch_inline(inline_dispatch):
    """Every test here dispatches in its own thread, without jitter (tests/shared_fixtures.py)."""
