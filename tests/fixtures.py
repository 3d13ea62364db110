import pytest

from integration.models import Account
from vtex_sandbox import LoopbackERP, Sandbox, SandboxServer

APP_KEY = "vtexappkey-e2e-SANDBOX"
APP_TOKEN = "e2e-sandbox-token-123456"


@pytest.fixture
def sandbox():
    sb = Sandbox(seed=11)
    # A short visibility timeout: an item whose commit failed comes back within the test.
    sb.add_account("e2estore", app_key=APP_KEY, app_token=APP_TOKEN, feed_config={
        "filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]},
        "queue": {"visibilityTimeoutInSeconds": 2, "messageRetentionPeriodInSeconds": 345600}})
    server = SandboxServer(sb, host="127.0.0.1", port=0).start()
    sb.url = server.url
    yield sb
    server.stop()
    sb.close()


@pytest.fixture
def erp():
    receiver = LoopbackERP(port=0).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def sandbox_store(sandbox):
    account = Account(name="E2E", account_name="e2estore", app_key=APP_KEY, api_base_url=sandbox.url)
    account.app_token = APP_TOKEN
    account.save()
    return account


def subprocess_database_url():
    """A DATABASE_URL for a subprocess that must use this test's database."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
