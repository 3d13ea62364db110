"""Built-in plugin: deliver orders as signed JSON POSTs to an HTTP endpoint."""
from erp_plugins.webhook.adapter import WebhookAdapter
from integration.plugins import hookimpl


@hookimpl
def erp_adapters():
    return [WebhookAdapter]
