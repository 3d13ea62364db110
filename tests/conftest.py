import os

import pytest

# Subprocesses started by tests never read the developer's .env file (DEBUG=true, their secret key):
# each test sets what it needs.
os.environ["HUB_ENV_FILE"] = ""


@pytest.fixture(autouse=True)
def fresh_process_counters():
    """VTEX response counts, copies of learned rate caps and route-pause answers are kept per
    process: start each test clean (on SQLite every test's store is id 1 again)."""
    from integration.pipeline import route_caps, vtex_access

    vtex_access.take_response_counts()
    vtex_access._pause_checked.clear()
    route_caps.forget()


# The rate limiter keeps each store's route schedule in Redis under this prefix when REDIS_URL is set
# (integration/ratelimit.py, _reserve_redis: "vtexhub:rl:<store id>:<route>").
RATE_LIMIT_KEYS = "vtexhub:rl:*"


@pytest.fixture(autouse=True)
def fresh_rate_schedules():
    """Each test starts with no rate-limit schedule for its stores. The schedule outlives a test: in
    Redis (keyed by store id, which on SQLite starts again at 1 in every test, and on PostgreSQL in
    every run) and as the slots this process reserved from it. Inherited, a test's first calls queue
    behind the last test's, and route caps learn from waits that test never caused. Only the
    limiter's keys are deleted, with SCAN (never FLUSHDB): the database may hold the broker's and
    others' keys."""
    from django.conf import settings

    from integration import ratelimit

    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=RATE_LIMIT_KEYS, count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
    # Without Redis a test that cares points VAR_DIR at its own directory, and that is part of the
    # slots' key; with Redis the key is the same for every test's store 1.
    ratelimit._allotments.clear()
