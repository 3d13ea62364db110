"""A hook notification reaches dispatch at once: stored, routed and a dispatch enqueued in the
request, never left for the minute sweep, even when a dispatch of the store ran a moment ago."""
import json

import pytest

from integration import queueing, tasks
from integration.models import OrderSync
from tests.shared_fixtures import make_binding
from tests.vtex_push.payloads import notification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(monkeypatch):
    calls = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, *args, **kw: calls.append((func, args)))
    return calls


def post(client, account, body):
    response = client.post(f"/hooks/vtex/{account.pk}/{account.hook_secret}/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def dispatches(queued, account):
    return [args for func, args in queued if func == queueing.DISPATCH_TASK and args == (account.pk,)]


def test_a_hook_notification_enqueues_its_dispatch_in_the_request(client, account, queued):
    make_binding(account)
    assert post(client, account, notification("1-01")) == {"stored": True}
    assert OrderSync.objects.filter(order__order_id="1-01").count() == 1
    assert len(dispatches(queued, account)) == 1


def test_one_queued_dispatch_is_enough_and_a_started_one_is_followed_by_another(client, account, queued, vtex):
    make_binding(account)
    post(client, account, notification("1-01"))
    post(client, account, notification("2-01"))  # the first dispatch has not started: it will see this one too
    assert len(dispatches(queued, account)) == 1
    tasks.dispatch(account.pk)  # it starts (VTEX answers nothing here: the orders wait for a retry)
    # A notification stored after the dispatch looked for due work gets a dispatch of its own at once.
    post(client, account, notification("3-01"))
    assert len(dispatches(queued, account)) == 2
