import os

import pytest

# Subprocesses started by tests never read the developer's .env file (DEBUG=true, their secret key):
# each test sets what it needs.
os.environ["HUB_ENV_FILE"] = ""


@pytest.fixture(autouse=True)
def fresh_process_counters():
    """VTEX response counts are kept per process until a task flushes them: start each test clean."""
    from integration.pipeline.vtex_access import take_response_counts

    take_response_counts()
