"""The JSONata tester cannot hold a web worker: evaluation runs in a child process with a hard
time and memory limit, on bounded input, and needs change permission on the store."""
import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from integration import expressions
from integration.expressions import evaluate_expression

CATASTROPHIC = '$match("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", /(a+)+$/)'


def test_a_catastrophic_regex_returns_an_error_within_the_limit():
    started = time.monotonic()
    result, error = evaluate_expression(CATASTROPHIC, {}, wall_seconds=1.0)
    elapsed = time.monotonic() - started
    assert result is None and "stopped after 1 s" in error
    assert elapsed < 1.0 + 2.0  # the limit, plus starting and killing the child


def test_a_huge_range_is_stopped_by_the_time_or_the_memory_limit():
    started = time.monotonic()
    result, error = evaluate_expression("$count([1..100000000])", {}, wall_seconds=2.0)
    assert result is None and error.startswith("JSONata evaluation error") and time.monotonic() - started < 4.0


def test_ordinary_expressions_still_evaluate():
    assert evaluate_expression('status = "ready-for-handling"', {"status": "ready-for-handling"}) == (True, "")
    assert evaluate_expression("$sum(items.quantity)", {"items": [{"quantity": 2}, {"quantity": 3}]}) == (5, "")


def test_input_size_is_bounded():
    long_expression = "value > " + "1" * expressions.EXPRESSION_MAX_LENGTH
    assert "at most" in evaluate_expression(long_expression, {})[1]
    deep = {}
    for _ in range(expressions.DOCUMENT_MAX_DEPTH + 5):
        deep = {"a": deep}
    assert "nested more than" in evaluate_expression("a", deep)[1]


@pytest.mark.django_db
def test_a_deeply_nested_test_document_is_a_form_error_not_a_500(admin_client, make_account):
    account = make_account()
    url = reverse("admin:integration_account_expression", args=[account.pk])
    for document in ("[" * 100_000 + "]" * 100_000, '{"a": ' * 100 + "1" + "}" * 100):
        response = admin_client.post(url, {"expression": "a", "document": document})
        assert response.status_code == 200 and "nested more than" in response.content.decode()


@pytest.mark.django_db
def test_the_tester_needs_change_permission_on_the_store(client, django_user_model, make_account):
    account = make_account()
    url = reverse("admin:integration_account_expression", args=[account.pk])
    viewer = django_user_model.objects.create_user("vic", password="vic-password-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(viewer)
    store_page = reverse("admin:integration_account_change", args=[account.pk])
    assert 'id="expression-test"' not in client.get(store_page).content.decode()
    assert client.get(url).status_code == 403
    assert client.post(url, {"expression": CATASTROPHIC, "document": "{}"}).status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="change_account"))
    viewer = django_user_model.objects.get(pk=viewer.pk)  # permissions are cached on the instance
    client.force_login(viewer)
    assert client.get(url).status_code == 200
    assert 'id="expression-test"' in client.get(store_page).content.decode()


@pytest.mark.django_db(transaction=True)
def test_another_request_is_served_while_a_catastrophic_regex_is_evaluated(admin_user, make_account, settings):
    """In the web process the regex held the interpreter (the regex engine never lets go of it):
    every other request of the process waited. Now it waits on a child process."""
    account = make_account()
    url = reverse("admin:integration_account_expression", args=[account.pk])
    slow, other = Client(), Client()
    slow.force_login(admin_user)
    other.force_login(admin_user)
    outcome = {}

    def evaluate():
        started = time.monotonic()
        response = slow.post(url, {"expression": CATASTROPHIC, "document": "{}"})
        outcome.update(status=response.status_code, html=response.content.decode(), seconds=time.monotonic() - started)

    thread = threading.Thread(target=evaluate)
    thread.start()
    served = []
    try:
        while thread.is_alive() and len(served) < 3:
            started = time.monotonic()
            assert other.get(reverse("admin:integration_account_changelist")).status_code == 200
            served.append(time.monotonic() - started)
        evaluating_meanwhile = thread.is_alive()
    finally:
        thread.join(expressions.WALL_SECONDS + 10)
    assert evaluating_meanwhile and len(served) == 3 and max(served) < 1.5, served
    assert outcome["status"] == 200 and "stopped after" in outcome["html"]
    assert outcome["seconds"] < expressions.WALL_SECONDS + 2.5
