"""The built-in alert channels, registered as a plugin on the observer hooks: e-mail through
Django's mail settings (ALERT_EMAILS) and a generic webhook (ALERT_WEBHOOK_URL)."""
import json
import logging

import requests
from django.conf import settings
from django.core.mail import send_mail

from integration.alerts import evaluate_cycle_failures
from integration.models import Account
from integration.plugins import StoreInfo, hookimpl

log = logging.getLogger(__name__)


def _text(alert, recovered):
    if recovered:
        return (f"[vtexhub] RECOVERED {alert.kind_label} — {alert.subject}",
                f"{alert.recovery_message or 'Recovered.'}\nOpened {alert.opened_at:%Y-%m-%d %H:%M:%S %Z}, recovered {alert.resolved_at:%Y-%m-%d %H:%M:%S %Z}.\nWas: {alert.message}")
    return (f"[vtexhub] ALERT {alert.kind_label} — {alert.subject}",
            f"{alert.message}\nSince {alert.opened_at:%Y-%m-%d %H:%M:%S %Z}. You will be told once when it recovers.")


@hookimpl
def alert_changed(alert, recovered):
    subject, body = _text(alert, recovered)
    if settings.ALERT_EMAILS:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, settings.ALERT_EMAILS, fail_silently=False)
    if settings.ALERT_WEBHOOK_URL:
        payload = {"event": "alert.recovered" if recovered else "alert.opened", "kind": alert.kind, "subject": alert.subject,
                   "store": alert.store.account_name if alert.store else None, "message": alert.message,
                   "opened_at": alert.opened_at.isoformat(), "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
                   "title": subject, "text": body}
        response = requests.post(settings.ALERT_WEBHOOK_URL, data=json.dumps(payload), timeout=10,
                                 headers={"Content-Type": "application/json"}, allow_redirects=False)
        response.raise_for_status()


@hookimpl
def feed_cycle_finished(account, summary):
    if isinstance(account, StoreInfo):
        store = Account.objects.filter(pk=account.id).first()
        if store is not None:
            evaluate_cycle_failures(store)
