"""The amqp adapter bound to a store in the admin: its own form, the password write-only, and
Check connection against the local RabbitMQ."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from integration.models import AdapterBinding

pytest.importorskip("pika", reason="the amqp extra is not installed")
pytestmark = pytest.mark.django_db


def test_bind_in_the_admin_then_check_the_connection(admin_client, account, rabbitmq):
    add = reverse("admin:integration_adapterbinding_add") + f"?adapter_key=amqp&account={account.pk}"
    form = admin_client.get(add).context["adminform"].form
    assert form.fields["setting__password"].widget.input_type == "password"
    assert form.initial["setting__routing_key"] == "vtex.order.{action}"
    data = {"account": account.pk, "adapter_key": "amqp", "name": "Broker", "enabled": "on",
            "setting__url": "amqp://guest@127.0.0.1:5672/%2F", "setting__password": "guest",
            "setting__exchange": "amq.topic", "setting__routing_key": "vtex.{account}.{action}",
            "setting__max_inbound_per_poll": "100", "setting__heartbeat": "30", "setting__timeout": "15"}
    response = admin_client.post(add, data, follow=True)
    assert response.status_code == 200
    binding = AdapterBinding.objects.get(adapter_key="amqp")
    assert binding.secret_settings == {"password": "guest"} and "password" not in binding.settings
    change = admin_client.get(reverse("admin:integration_adapterbinding_change", args=[binding.pk])).content.decode()
    assert 'value="guest"' not in change
    response = admin_client.post(reverse("admin:integration_adapterbinding_changelist"), {
        "action": "check_connection", ACTION_CHECKBOX_NAME: [str(binding.pk)], "index": 0}, follow=True)
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert messages[0][0] == "success", messages
    assert "Connected to amqp://127.0.0.1:5672 (virtual host '/') as 'guest'. Exchange 'amq.topic' exists." in messages[0][1]
