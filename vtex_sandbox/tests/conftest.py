"""Fixtures for the sandbox tests: a seeded Sandbox served on a free loopback port, and clients."""
import pytest
import requests

from vtex_sandbox import LoopbackERP, Sandbox, SandboxServer

STORE = "teststore"
APP_KEY = "vtexappkey-teststore-ABC"
APP_TOKEN = "token-not-secret"


class VtexClient:
    """requests.Session bound to the sandbox URL, sending the app key/token headers."""

    def __init__(self, session, base, app_key=APP_KEY, app_token=APP_TOKEN):
        self.session, self.base = session, base
        self.headers = {"X-VTEX-API-AppKey": app_key, "X-VTEX-API-AppToken": app_token,
                        "Accept": "application/json"}

    def request(self, method, path, **kwargs):
        headers = dict(self.headers, **kwargs.pop("headers", {}))
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def feed(self, maxlot=10):
        response = self.get("/api/orders/feed", params={"maxlot": maxlot})
        assert response.status_code == 200, response.text
        return response.json()

    def commit(self, handles):
        response = self.post("/api/orders/feed", json={"handles": list(handles)})
        assert response.status_code == 200, response.text
        return response

    def configure_feed(self, filter_=None, visibility=250, retention=345600):
        body = {"filter": filter_ or {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]},
                "queue": {"visibilityTimeoutInSeconds": visibility, "MessageRetentionPeriodInSeconds": retention}}
        response = self.post("/api/orders/feed/config", json=body)
        assert response.status_code == 200, response.text


@pytest.fixture
def sb():
    sandbox = Sandbox(seed=1, hook_backoff_s=0.05)
    sandbox.add_account(STORE, app_key=APP_KEY, app_token=APP_TOKEN)
    yield sandbox
    sandbox.close()


@pytest.fixture
def server(sb):
    srv = SandboxServer(sb, host="127.0.0.1", port=0).start()
    yield srv
    srv.stop()


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False  # never send loopback calls through an environment proxy
    yield session
    session.close()


@pytest.fixture
def vtex(server, http):
    return VtexClient(http, server.url)


@pytest.fixture
def client_for(server, http):
    """Factory: a VtexClient for other credentials."""
    return lambda app_key, app_token: VtexClient(http, server.url, app_key, app_token)


@pytest.fixture
def erp():
    receiver = LoopbackERP(port=0).start()
    yield receiver
    receiver.stop()
