"""Fixtures for the hook tests: the store's hook path and a poster (notifications: payloads.py)."""
import json

import pytest


@pytest.fixture
def hook_path(account):
    return f"/hooks/vtex/{account.pk}/{account.hook_secret}/"


@pytest.fixture
def post_hook(client, hook_path):
    """POST a body (dict/list -> JSON, str/bytes as they are) to the store's hook URL."""

    def post(body, path=None, **extra):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return client.post(path or hook_path, data=data, content_type="application/json", **extra)

    return post
