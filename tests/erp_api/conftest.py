"""The way back's fixtures: VTEX with its update calls, a recording binding and its ERP token."""
import pytest

from integration.models import AdapterBinding, ErpToken


@pytest.fixture(autouse=True)
def _dispatch_inline(inline_dispatch):
    """Every test here dispatches in its own thread, without jitter (tests/shared_fixtures.py)."""


@pytest.fixture
def oms(vtex_updates):
    return vtex_updates


@pytest.fixture
def binding(account, recorder):
    return AdapterBinding.objects.create(account=account, adapter_key="rec_a", name="ERP")


@pytest.fixture
def token(binding):
    return ErpToken.issue(binding, name="tests")[1]
