"""A store token or an adapter secret never shows up in logs, admin pages, attempt excerpts or errors."""
import logging

import pytest

from integration.pipeline.dispatch import dispatch_due
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.models import AdapterBinding, OrderSync, SyncAttempt
from integration.redaction import RedactingFilter
from tests.fake_feed import BASE, feed_item

pytestmark = pytest.mark.django_db
TOKEN = "test-app-token-SECRET-123"
ERP_TOKEN = "erp-bearer-SECRET-456"
SIGNING = "erp-signing-SECRET-789"


@pytest.fixture
def leaky_erp(vtex):
    """An ERP that echoes the request's headers back in a 400."""
    def echo(request):
        return 400, {}, "bad request; you sent: " + "\n".join(f"{k}: {v}" for k, v in request.headers.items())

    vtex.add_callback("POST", "https://erp.example/orders", callback=echo)


def everything_recorded():
    parts = []
    for sync in OrderSync.objects.all():
        parts += [sync.last_error, sync.hold_reason]
    for attempt in SyncAttempt.objects.all():
        parts += [attempt.error, attempt.traceback, attempt.request_excerpt, attempt.response_excerpt]
    return "\n".join(parts)


def test_secrets_stay_out_of_errors_excerpts_and_logs(account, feed, oms, vtex, leaky_erp, caplog):
    binding = AdapterBinding(account=account, adapter_key="webhook")
    binding.apply_settings({"url": "https://erp.example/orders", "bearer_token": ERP_TOKEN, "signing_secret": SIGNING})
    binding.save()
    oms.add("1-01")
    feed.add(feed_item("1-01"))
    handler_output = []

    class Capture(logging.Handler):
        def emit(self, record):
            handler_output.append(self.format(record))

    capture = Capture()
    capture.addFilter(RedactingFilter())  # what the configured stdout handler does
    logging.getLogger().addHandler(capture)
    try:
        run_feed_cycle(account)
        dispatch_due(budget=5)
        vtex.get(f"{BASE}/api/orders/feed", status=401, body=f"token {TOKEN} is not valid")
        summary = run_feed_cycle(account)
        logging.getLogger("integration").error("oops with %s and %s", TOKEN, ERP_TOKEN)
    finally:
        logging.getLogger().removeHandler(capture)
    recorded = everything_recorded()
    assert "400" in recorded  # the failure itself is there, for the operator
    for secret in (TOKEN, ERP_TOKEN, SIGNING):
        assert secret not in recorded
        assert secret not in summary.error
        assert secret not in "\n".join(handler_output)
    account.refresh_from_db()
    assert TOKEN not in account.last_cycle_error


def test_admin_pages_never_render_a_token_or_adapter_secret(admin_client, account):
    binding = AdapterBinding(account=account, adapter_key="webhook")
    binding.apply_settings({"url": "https://erp.example/orders", "bearer_token": ERP_TOKEN, "signing_secret": SIGNING})
    binding.save()
    pages = [
        "/admin/integration/account/", f"/admin/integration/account/{account.pk}/change/",
        "/admin/integration/adapterbinding/", f"/admin/integration/adapterbinding/{binding.pk}/change/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in (TOKEN, ERP_TOKEN, SIGNING, account.app_token_ciphertext, binding.secret_settings_ciphertext):
            assert secret not in html, (url, secret[:12])
