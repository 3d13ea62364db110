import os

import pytest

# Subprocesses started by tests never read the developer's .env file (DEBUG=true, their secret key):
# each test sets what it needs.
os.environ["HUB_ENV_FILE"] = ""


@pytest.fixture(autouse=True)
def fresh_process_counters():
    """VTEX response counts and copies of learned rate caps are kept per process: start each test clean."""
    from integration.pipeline import route_caps
    from integration.pipeline.vtex_access import take_response_counts

    take_response_counts()
    route_caps.forget()
