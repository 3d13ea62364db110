"""Adapter bindings in the admin: the adapter's own settings form (types, defaults, secrets
write-only, the adapter's validation per field), the actions (check connection, pause, resume,
reset the circuit breaker), the installed plugins page, the alerts list and the index links."""
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from integration.operations import bindings as binding_ops
from integration.operations import results
from integration.admin.forms import binding_form_for
from integration.models import AdapterBinding, Alert, AlertKind, SyncStatus
from integration.plugins.contract import Setting
from integration.plugins.manager import get_registry
from vtex_sandbox import LoopbackERP
from tests.shared_fixtures import make_binding, make_hub_order, make_sync

pytestmark = pytest.mark.django_db

ADD = "admin:integration_adapterbinding_add"


def run_action(client, action, pks):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": 0}
    response = client.post(reverse("admin:integration_adapterbinding_changelist"), data, follow=True)
    assert response.status_code == 200
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def add_url(account, adapter="webhook"):
    return reverse(ADD) + f"?adapter_key={adapter}&account={account.pk}"


def webhook_post(account, **settings):
    data = {"account": account.pk, "adapter_key": "webhook", "name": "ERP", "enabled": "on", "gates_start_handling": "on",
            "setting__url": "https://erp.example.com/orders", "setting__signing_secret": "", "setting__bearer_token": "",
            "setting__timeout": "30", "setting__headers": ""}
    data.update({f"setting__{k}": v for k, v in settings.items()})
    return data


# --- the settings form -------------------------------------------------------------------------------------
def test_adding_a_binding_starts_with_choosing_the_adapter(admin_client, account):
    response = admin_client.get(reverse(ADD) + f"?account={account.pk}")
    html = response.content.decode()
    assert "choose the adapter" in html and "For the store <strong>Test store</strong>" in html
    assert f"?adapter_key=webhook&amp;account={account.pk}" in html and "adapter_key=file_drop" in html


def test_the_settings_form_is_the_adapters_own(admin_client, account):
    response = admin_client.get(add_url(account))
    form = response.context["adminform"].form
    assert form.initial["account"] == str(account.pk)
    fields = form.fields
    assert fields["setting__url"].required and fields["setting__url"].label == "Endpoint URL"
    assert fields["setting__timeout"].__class__.__name__ == "IntegerField"
    assert form.initial["setting__timeout"] == 30                                  # the adapter's default
    assert fields["setting__headers"].widget.__class__.__name__ == "Textarea"       # "one 'Name: value' per line"
    secret = fields["setting__bearer_token"]
    assert secret.widget.__class__.__name__ == "PasswordInput" and not secret.widget.render_value and not secret.required
    assert "The hub POSTs each order here as JSON" in response.content.decode()       # the adapter's help
    assert [c for c, _ in fields["actions"].choices] == ["send", "cancel", "status"]


def test_a_bad_setting_is_rejected_under_its_field_then_fixed(admin_client, account):
    response = admin_client.post(add_url(account), webhook_post(account, url="ftp://x", timeout="0"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["setting__url"] == ["Enter a valid http or https URL (with a host)."]
    assert "setting__timeout" in errors
    assert not AdapterBinding.objects.exists()
    response = admin_client.post(add_url(account), webhook_post(account, bearer_token="erp-bearer-SECRET-1"))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:integration_account_change", args=[account.pk])
    binding = AdapterBinding.objects.get()
    assert binding.settings == {"url": "https://erp.example.com/orders", "timeout": 30, "headers": ""}
    assert binding.secret_settings == {"bearer_token": "erp-bearer-SECRET-1"}
    assert binding.actions == []


def test_a_blank_secret_keeps_the_stored_one_and_clear_removes_it(admin_client, binding):
    url = reverse("admin:integration_adapterbinding_change", args=[binding.pk])
    html = admin_client.get(url).content.decode()
    assert "erp-bearer-SECRET-987" not in html and "A value is stored: leave blank to keep it." in html
    assert "erp.example.com/orders" in html
    # (the same URL: a changed URL needs the secrets again, see test_a_changed_url_needs_its_secrets_again)
    data = {"name": "ERP renamed", "enabled": "on", "gates_start_handling": "on", "setting__url": "https://erp.example.com/orders",
            "setting__timeout": "5", "setting__bearer_token": "", "setting__signing_secret": "", "setting__headers": ""}
    assert admin_client.post(url, data).status_code == 302
    binding.refresh_from_db()
    assert binding.settings["timeout"] == 5 and binding.name == "ERP renamed"
    assert binding.secret_settings == {"bearer_token": "erp-bearer-SECRET-987"}
    assert admin_client.post(url, {**data, "setting__bearer_token__clear": "on"}).status_code == 302
    binding.refresh_from_db()
    assert binding.secret_settings == {}


def test_settings_of_every_type_become_form_fields():
    from integration.plugins.contract import Adapter

    class Sample(Adapter):
        key, label = "sample-types", "Sample"
        settings = (Setting("mode", type="choice", choices=(("a", "Mode A"), ("b", "Mode B")), default="a"),
                    Setting("verbose", type="bool", default=True), Setting("count", type="int"),
                    Setting("where", type="path", required=True), Setting("token", secret=True, required=True))

    form = binding_form_for(Sample)()
    assert [c for c, _ in form.fields["setting__mode"].choices] == ["", "a", "b"]
    assert form.fields["setting__verbose"].__class__.__name__ == "BooleanField"
    assert form.fields["setting__where"].required and not form.fields["setting__count"].required
    assert not form.fields["setting__token"].required   # write-only: a blank keeps the stored one


def test_operators_never_see_settings(operator_client, binding):
    url = reverse("admin:integration_adapterbinding_change", args=[binding.pk])
    response = operator_client.get(url)
    html = response.content.decode()
    assert "erp.example.com" not in html and "setting__" not in html and "erp-bearer-SECRET-987" not in html
    assert "Circuit breaker" in html


# --- actions ------------------------------------------------------------------------------------------------
def test_check_connection_calls_the_adapter(admin_client, account):
    erp = LoopbackERP(port=0).start()
    try:
        good = make_binding(account, name="Up", url=erp.url + "/orders")
        down = make_binding(account, name="Down", url="http://127.0.0.1:9/orders")
        msgs = run_action(admin_client, "check_connection", [good.pk, down.pk])
    finally:
        erp.stop()
    assert msgs[0][0] == "success" and msgs[0][1].startswith("Test store → Up: ") and "is reachable" in msgs[0][1]
    assert msgs[1][0] == "error" and msgs[1][1].startswith("Test store → Down: connection check failed (transient):")


def test_pause_holds_the_bindings_syncs_and_resume_releases_them(admin_client, account, binding, monkeypatch):
    from integration.pipeline.dispatch import due_syncs

    dispatched = []
    monkeypatch.setattr("integration.queueing.enqueue_dispatch", lambda account_id=None: dispatched.append(account_id))
    sync = make_sync(make_hub_order(account, "1-01"), binding, SyncStatus.PENDING, next_attempt_at=timezone.now())
    assert run_action(admin_client, "pause_bindings", [binding.pk]) == [
        ("success", "Test store → ERP: paused: its syncs are held until it is resumed (1 pending now).")]
    assert not due_syncs().exists()
    sync.refresh_from_db()
    assert sync.status == SyncStatus.PENDING   # held, never failed
    assert run_action(admin_client, "resume_bindings", [binding.pk]) == [
        ("success", "Test store → ERP: resumed: its 1 pending sync goes out now.")]
    assert list(due_syncs().values_list("pk", flat=True)) == [sync.pk] and dispatched == [account.pk]


def test_the_breaker_is_visible_and_can_be_reset(admin_client, account, binding, settings, monkeypatch):
    monkeypatch.setattr("integration.queueing.enqueue_dispatch", lambda account_id=None: None)
    settings.BREAKER_THRESHOLD = 5
    assert binding_ops.breaker_state(binding) == binding_ops.CLOSED
    until = timezone.now() + timedelta(seconds=60)
    AdapterBinding.objects.filter(pk=binding.pk).update(breaker_failures=6, breaker_open_until=until)
    binding.refresh_from_db()
    assert binding_ops.breaker_state(binding) == binding_ops.OPEN
    assert binding_ops.breaker_state(binding, now=until + timedelta(seconds=1)) == binding_ops.HALF_OPEN
    Alert.objects.create(kind=AlertKind.BREAKER_OPEN, subject=f"binding-{binding.pk}", account=account, message="open")
    html = admin_client.get(reverse("admin:integration_adapterbinding_changelist")).content.decode()
    assert "breaker-open" in html and "(6 failures in a row)" in html
    html = admin_client.get(reverse("admin:integration_account_change", args=[account.pk])).content.decode()
    assert "breaker-open" in html   # on the store page too
    assert run_action(admin_client, "reset_breakers", [binding.pk]) == [
        ("success", "Test store → ERP: circuit breaker reset (was open): calls go out again.")]
    binding.refresh_from_db()
    assert (binding.breaker_failures, binding.breaker_open_until) == (0, None)
    assert Alert.objects.get().resolved_at is not None


def test_an_operator_may_pause_a_binding(operator_client, binding, monkeypatch):
    monkeypatch.setattr("integration.queueing.enqueue_dispatch", lambda account_id=None: None)
    assert run_action(operator_client, "pause_bindings", [binding.pk])[0][0] == "success"
    binding.refresh_from_db()
    assert not binding.enabled


# --- installed plugins, alerts, index --------------------------------------------------------------------
def test_the_installed_plugins_page(admin_client, account, binding, monkeypatch):
    from integration.plugins.manager import LoadError

    registry = get_registry()
    monkeypatch.setattr(registry, "load_errors", registry.load_errors + [
        LoadError("hub-broken", "hub-broken-adapter", "0.1", "ImportError: No module named 'nothing'", "Traceback ...")])
    AdapterBinding.objects.create(account=account, adapter_key="gone-adapter", name="Old")
    response = admin_client.get(reverse("admin:integration_plugins"))
    html = response.content.decode()
    assert "erp_plugins.webhook" in html and "<code>webhook</code>" in html and "erp_adapters" in html
    assert "1 binding" in html   # the webhook binding
    assert "hub-broken" in html and "ImportError: No module named" in html
    assert "<code>gone-adapter</code>: 1 binding" in html


def test_the_index_links_the_dashboard_and_the_plugins_page(admin_client, operator_client):
    for client in (admin_client, operator_client):
        html = client.get(reverse("admin:index")).content.decode()
        assert reverse("admin:integration_dashboard") in html and reverse("admin:integration_plugins") in html
        assert client.get(reverse("admin:integration_plugins")).status_code == 200


def test_the_alerts_list_is_read_only_and_filters_open_and_recovered(admin_client, account):
    open_alert = Alert.objects.create(kind=AlertKind.CYCLE_FAILING, subject="teststore", account=account, message="failing 3 times")
    Alert.objects.create(kind=AlertKind.HOOK_SILENT, subject="teststore", account=account, message="quiet", resolved_at=timezone.now())
    url = reverse("admin:integration_alert_changelist")
    assert len(admin_client.get(url).context["cl"].result_list) == 2
    response = admin_client.get(url, {"state": "open"})
    assert [a.pk for a in response.context["cl"].result_list] == [open_alert.pk]
    assert len(admin_client.get(url, {"state": "recovered"}).context["cl"].result_list) == 1
    html = response.content.decode()
    assert "failing 3 times" in html and reverse("admin:integration_alert_add") not in html
    page = admin_client.get(reverse("admin:integration_alert_change", args=[open_alert.pk])).content.decode()
    assert 'name="_save"' not in page
    assert admin_client.post(reverse("admin:integration_alert_delete", args=[open_alert.pk]), {"post": "yes"}).status_code == 403


def test_a_binding_whose_adapter_is_not_installed(admin_client, account):
    gone = AdapterBinding.objects.create(account=account, adapter_key="gone-adapter", name="Old ERP")
    result = binding_ops.check_binding_connection(gone)
    assert result.level == results.ERROR and "Adapter 'gone-adapter' is not installed" in result.text
    html = admin_client.get(reverse("admin:integration_adapterbinding_change", args=[gone.pk])).content.decode()
    assert "is not installed: its syncs are held until it is" in html


def test_duration_wording():
    assert [results.duration(s) for s in (None, 45, 600, 7200 * 3, 86400 * 3)] == ["—", "45 s", "10 min", "6.0 h", "3.0 days"]
