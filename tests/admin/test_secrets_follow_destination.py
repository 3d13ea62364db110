"""A stored secret never follows a changed destination: changing a store's API base URL,
environment or account name (or a webhook binding's URL) needs the token (or secret) typed
again in the same form. Webhook headers that carry a credential have a write-only variant."""
import pytest
from django.urls import reverse

from integration.models import AdapterBinding
from tests.shared_fixtures import make_binding
from tests.admin.test_admin_stores import change_form_data

pytestmark = pytest.mark.django_db
TOKEN = "test-app-token-SECRET-123"


@pytest.mark.parametrize("field,value", [("api_base_url", "https://collector.attacker.example"),
                                         ("environment", "attacker"), ("account_name", "otherstore")])
def test_changing_where_the_store_token_goes_needs_the_token_again(admin_client, account, field, value):
    url = reverse("admin:integration_account_change", args=[account.pk])
    data = change_form_data(admin_client, account)
    data[field] = value
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "enter the app token again" in errors["app_token"][0]
    account.refresh_from_db()
    assert getattr(account, field) != value and account.app_token == TOKEN

    response = admin_client.post(url, {**data, "app_token": "a-new-token-SECRET-2"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert getattr(account, field) == value and account.app_token == "a-new-token-SECRET-2"


def test_other_changes_keep_the_stored_token_without_typing_it(admin_client, account):
    data = change_form_data(admin_client, account)
    data["name"] = "Renamed"
    assert admin_client.post(reverse("admin:integration_account_change", args=[account.pk]), data).status_code == 302
    account.refresh_from_db()
    assert account.name == "Renamed" and account.app_token == TOKEN


def _binding_data(url, **settings):
    data = {"name": "ERP", "enabled": "on", "gates_start_handling": "on", "setting__url": url, "setting__timeout": "5",
            "setting__bearer_token": "", "setting__signing_secret": "", "setting__headers": "", "setting__secret_headers": ""}
    data.update({f"setting__{k}": v for k, v in settings.items()})
    return data


def test_changing_a_webhook_url_needs_its_stored_secrets_again(admin_client, account):
    binding = make_binding(account)
    url = reverse("admin:integration_adapterbinding_change", args=[binding.pk])
    response = admin_client.post(url, _binding_data("https://collector.attacker.example/"))
    assert response.status_code == 200
    assert "enter this again" in response.context["adminform"].form.errors["setting__bearer_token"][0]
    binding.refresh_from_db()
    assert binding.settings["url"] == "https://erp.example.com/orders"

    # Entering it again, or clearing it, both let the new URL be saved.
    assert admin_client.post(url, _binding_data("https://erp2.example.com/orders", bearer_token="erp-bearer-NEW-1")).status_code == 302
    binding.refresh_from_db()
    assert binding.settings["url"] == "https://erp2.example.com/orders" and binding.secret_settings == {"bearer_token": "erp-bearer-NEW-1"}
    response = admin_client.post(url, {**_binding_data("https://erp3.example.com/orders"), "setting__bearer_token__clear": "on"})
    assert response.status_code == 302
    binding.refresh_from_db()
    assert binding.settings["url"] == "https://erp3.example.com/orders" and binding.secret_settings == {}


def test_secret_headers_are_encrypted_write_only_and_sent(admin_client, account, vtex):
    binding = make_binding(account)
    url = reverse("admin:integration_adapterbinding_change", args=[binding.pk])
    data = _binding_data("https://erp.example.com/orders", headers="X-Tenant: acme", secret_headers="X-Partner-Id: erp-partner-SECRET-55")
    assert admin_client.post(url, data).status_code == 302
    binding.refresh_from_db()
    assert binding.secret_settings["secret_headers"] == "X-Partner-Id: erp-partner-SECRET-55"
    assert "erp-partner-SECRET-55" not in str(binding.settings) and "erp-partner-SECRET-55" not in binding.secret_settings_ciphertext
    page = admin_client.get(url).content.decode()
    assert "erp-partner-SECRET-55" not in page and "A value is stored: leave blank to keep it." in page
    # A form error re-renders without echoing the value just typed.
    page = admin_client.post(url, {**data, "setting__timeout": "0"}).content.decode()
    assert "erp-partner-SECRET-55" not in page

    seen = []
    vtex.add_callback("POST", "https://erp.example.com/orders", callback=lambda r: (seen.append(dict(r.headers)), (400, {}, "no"))[1])
    adapter = AdapterBinding.objects.get(pk=binding.pk).build_adapter()
    from integration.plugins.contract import PermanentError
    from tests.fake_oms import make_order
    from integration.plugins.parsed_order import parse_order

    raw = make_order("1-01")
    with pytest.raises(PermanentError) as failure:
        adapter.send_order(parse_order(raw), raw, "idem-1")
    assert seen[0]["X-Partner-Id"] == "erp-partner-SECRET-55" and seen[0]["X-Tenant"] == "acme"
    assert "erp-partner-SECRET-55" not in (failure.value.request_excerpt or "") and "X-Partner-Id: [redacted]" in failure.value.request_excerpt
