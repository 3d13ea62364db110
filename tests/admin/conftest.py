"""Fixtures for the operator admin tests: a store with two webhook bindings, orders, syncs and attempts."""
import importlib
from datetime import timedelta

import pytest
from django.apps import apps as global_apps
from django.utils import timezone

from integration.models import AdapterBinding, AttemptOutcome, Order, OrderSync, SyncAttempt, SyncStatus
from tests.fake_oms import make_order

OPERATORS = "Operators"


def ensure_operators_group():
    """The group comes from a data migration; a transactional test's flush empties auth_group."""
    migration = importlib.import_module("integration.migrations.0002_operators_group")
    migration.create_operators_group(global_apps, None)
    from django.contrib.auth.models import Group

    return Group.objects.get(name=OPERATORS)


@pytest.fixture
def operators_group(db):
    return ensure_operators_group()


@pytest.fixture
def operator(django_user_model, operators_group):
    user = django_user_model.objects.create_user("olga", "olga@example.com", "olga-password-123", is_staff=True)
    user.groups.add(operators_group)
    return user


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def enqueued(monkeypatch):
    """enqueue_dispatch calls, recorded instead of sent to the broker."""
    calls = []
    monkeypatch.setattr("integration.queueing.enqueue_dispatch", lambda account_id=None, dedupe=True: calls.append(account_id))
    return calls


def make_binding(account, name="ERP", gates=True, url="https://erp.example.com/orders"):
    binding = AdapterBinding(account=account, adapter_key="webhook", name=name, gates_start_handling=gates,
                             settings={"url": url, "timeout": 5})
    binding.secret_settings = {"bearer_token": "erp-bearer-SECRET-987"}
    binding.save()
    return binding


@pytest.fixture
def binding(account):
    return make_binding(account)


def make_hub_order(account, order_id, *, status="ready-for-handling", snapshot=True, **kw):
    return Order.objects.create(account=account, order_id=order_id, vtex_status=status,
                                snapshot=make_order(order_id, status) if snapshot else None, **kw)


def make_sync(order, binding, status=SyncStatus.FAILED, *, attempts=None, error="ERP answered 500", action="send", **kw):
    if attempts is None:
        attempts = 0 if status == SyncStatus.PENDING else 3
    kw.setdefault("next_attempt_at", timezone.now() + timedelta(hours=1) if status == SyncStatus.PENDING else None)
    sync = OrderSync.objects.create(order=order, binding=binding, action=action, status=status, attempts=attempts,
                                    last_error=error if status in (SyncStatus.FAILED, SyncStatus.PENDING) else "",
                                    hold_reason="VTEX says the order is 'handling'" if status == SyncStatus.HELD else "",
                                    **kw)
    for n in range(1, min(attempts, 3) + 1):
        SyncAttempt.objects.create(sync=sync, number=n, duration_ms=40 + n, outcome=AttemptOutcome.TRANSIENT, error=error,
                                   request_excerpt=f'POST /orders {{"orderId": "{order.order_id}"}}',
                                   response_excerpt="HTTP 500 <html>oops</html>")
    return sync
