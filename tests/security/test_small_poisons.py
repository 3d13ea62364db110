"""The smaller ways one bad value used to break more than itself."""
import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from integration import alerts
from integration.models import AdapterBinding, Account

pytestmark = pytest.mark.django_db


def _feed_config(quantity, age=60):
    return {"filter": {"type": "FromWorkflow", "status": ["ready-for-handling"]}, "queue": {"visibilityTimeoutInSeconds": 250},
            "quantity": quantity, "approximateAgeOfOldestMessageInSeconds": age}


@pytest.mark.parametrize("quantity,age,kept_age", [("lots", 60, 60.0), (None, "old", None), (10**30, 1e308, None),
                                                  ({"n": 1}, [1], None), (True, -5, None)])
def test_a_non_numeric_feed_backlog_does_not_stop_the_check_of_every_store(make_account, vtex, quantity, age, kept_age):
    bad = make_account(name="Bad", account_name="badstore", app_key="key-bad", api_base_url="https://bad.example.com")
    good = make_account(name="Good", account_name="goodstore", app_key="key-good", api_base_url="https://good.example.com")
    vtex.get("https://bad.example.com/api/orders/feed/config", json=_feed_config(quantity, age))
    vtex.get("https://good.example.com/api/orders/feed/config", json=_feed_config(42, 120))
    alerts.check_alerts()
    bad.refresh_from_db()
    good.refresh_from_db()
    assert (good.feed_backlog_quantity, good.feed_backlog_age) == (42, 120.0) and good.feed_backlog_checked_at
    assert bad.feed_backlog_quantity is None and bad.feed_backlog_age == kept_age and bad.feed_backlog_checked_at


def test_a_feed_configuration_with_a_queue_that_is_not_an_object(make_account, vtex):
    account = make_account(api_base_url="https://odd.example.com")
    vtex.get("https://odd.example.com/api/orders/feed/config", json={"queue": "none", "quantity": 7})
    alerts.check_alerts()
    account.refresh_from_db()
    assert account.feed_backlog_quantity == 7


def test_a_binding_whose_secrets_cannot_be_decrypted_opens_and_takes_new_ones(admin_client, account, settings):
    binding = AdapterBinding(account=account, adapter_key="webhook", name="ERP", settings={"url": "https://erp.example.com/orders", "timeout": 5})
    binding.secret_settings = {"bearer_token": "erp-bearer-SECRET-987"}
    binding.save()
    settings.HUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key that encrypted them is gone
    account.app_token = "test-app-token-SECRET-123"  # the store itself is readable with the new key
    Account.objects.filter(pk=account.pk).update(app_token_ciphertext=account.app_token_ciphertext)
    url = reverse("admin:integration_adapterbinding_change", args=[binding.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert "cannot be decrypted" in response.content.decode() and "enter it again" in response.content.decode()
    data = {"name": "ERP", "enabled": "on", "gates_start_handling": "on", "setting__url": "https://erp.example.com/orders",
            "setting__timeout": "5", "setting__bearer_token": "erp-bearer-NEW-1", "setting__signing_secret": "",
            "setting__headers": "", "setting__secret_headers": ""}
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    binding.refresh_from_db()
    assert binding.secret_settings == {"bearer_token": "erp-bearer-NEW-1"}
    assert "cannot be decrypted" not in admin_client.get(url).content.decode()
