import os

import pytest

from integration.models import Account

# Subprocesses started by tests never read the developer's .env file (DEBUG=true, their secret key):
# each test sets what it needs.
os.environ["HUB_ENV_FILE"] = ""


@pytest.fixture(autouse=True)
def fresh_process_counters():
    """VTEX response counts are kept per process until a task flushes them: start each test clean."""
    from integration.pipeline.vtex_access import take_response_counts

    take_response_counts()


@pytest.fixture
def make_account(db):
    def make(**kw):
        defaults = dict(name="Test store", account_name="teststore", app_key="vtexappkey-teststore-ABCDEF",
                        api_base_url="https://teststore.vtexcommercestable.com.br")
        defaults.update(kw)
        token = defaults.pop("app_token", "test-app-token-SECRET-123")
        account = Account(**defaults)
        account.app_token = token
        account.save()
        return account

    return make


@pytest.fixture
def account(make_account):
    return make_account()


@pytest.fixture
def vtex():
    """VTEX mocked over HTTP: every request the code sends must be registered here."""
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
