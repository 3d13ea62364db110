import pytest

from integration.models import AdapterBinding, ErpToken, Order, StartHandlingState
from tests.recording import bindings, inline_dispatch, recorder  # noqa: F401
from tests.way_back.helpers import FakeVtexUpdates


@pytest.fixture
def oms(vtex):
    return FakeVtexUpdates(vtex)


@pytest.fixture
def binding(account, recorder):
    return AdapterBinding.objects.create(account=account, adapter_key="rec_a", name="ERP")


@pytest.fixture
def token(binding):
    return ErpToken.issue(binding, name="tests")[1]


@pytest.fixture
def handled_order(account, oms):
    """An order the hub delivered and VTEX moved to handling."""
    oms.add("1001-01", "handling")
    return Order.objects.create(account=account, order_id="1001-01", vtex_status="handling",
                                start_handling_state=StartHandlingState.DONE)
