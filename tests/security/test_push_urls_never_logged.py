"""A hook URL's secret never reaches a log line, whichever way the request is refused and whether
or not the logging process ever decrypted that secret (another worker may have)."""
import io
import json
import logging

import pytest
from django.test import Client

from integration import redaction
from integration.vtex_push.intake import MAX_BODY_BYTES

pytestmark = pytest.mark.django_db
GUESSED = "guessed-SECRET-segment-0042"


@pytest.fixture
def configured_log():
    """The output of every handler settings.LOGGING installed, as the process would write it."""
    handlers = {h for name in ("", "django", "django.request", "django.server", "integration")
                for h in logging.getLogger(name).handlers if isinstance(h, logging.StreamHandler)}
    assert handlers, "settings.LOGGING installs stream handlers"
    buffer = io.StringIO()
    previous = {h: h.setStream(buffer) for h in handlers}
    yield buffer
    for handler, stream in previous.items():
        handler.setStream(stream)


@pytest.fixture
def fresh_worker(monkeypatch):
    """No secret decrypted yet in this process: only the URL pattern can hide it."""
    monkeypatch.setattr(redaction, "_known_secrets", set())


def _notification(account_name, **change):
    body = {"Domain": "Fulfillment", "OrderId": "1-01", "State": "ready-for-handling", "LastState": "window-to-cancel",
            "LastChange": "2026-11-27T10:00:00.1234567Z", "CurrentChange": "2026-11-27T10:00:01.1234567Z",
            "Origin": {"Account": account_name, "Key": "vtexappkey-teststore"}}
    body.update(change)
    return json.dumps(body)


def test_every_hook_refusal_keeps_the_secret_out_of_the_log(account, configured_log, monkeypatch):
    secret = account.hook_secret
    good = f"/hooks/vtex/{account.pk}/{secret}/"
    client = Client(raise_request_exception=False)
    requests = [
        (405, lambda: client.get(good)),
        (405, lambda: client.put(good, data="{}", content_type="application/json")),
        (413, lambda: client.post(good, data="x" * (MAX_BODY_BYTES + 10), content_type="application/json")),
        (400, lambda: client.post(good, data="{not json", content_type="application/json")),
        (400, lambda: client.post(good, data=_notification("teststore", OrderId=None), content_type="application/json")),
        # Another Origin.Account is merely unexpected: recorded (200) and logged as such, secret-free.
        (200, lambda: client.post(good, data=_notification("another-store"), content_type="application/json")),
        (401, lambda: client.post(f"/hooks/vtex/{account.pk}/{GUESSED}/", data="{}", content_type="application/json")),
        (401, lambda: client.post(f"/hooks/vtex/{account.pk}/{GUESSED}", data="{}", content_type="application/json")),
        (401, lambda: client.post(f"/hooks/vtex/{account.pk}/", data="{}", content_type="application/json", HTTP_KEY=GUESSED)),
        (404, lambda: client.post(f"/hooks/vtex/999999/{secret}/", data="{}", content_type="application/json")),
        (404, lambda: client.post(f"/hooks/vtex/{account.pk}/{secret}/extra/", data="{}", content_type="application/json")),
    ]
    for status, send in requests:
        monkeypatch.setattr(redaction, "_known_secrets", set())  # as in a worker that never decrypted it
        assert send().status_code == status
    output = configured_log.getvalue()
    # Django's request warnings were written (the test can see a leak), with the URLs redacted.
    for phrase in ("Method Not Allowed", "Request Entity Too Large", "Bad Request", "Unauthorized", "Not Found", "recorded, not routed"):
        assert phrase in output, phrase
    assert f"/hooks/vtex/{account.pk}/[redacted]" in output
    assert secret not in output and GUESSED not in output


def test_the_request_attached_to_a_record_is_redacted(account, fresh_worker, rf):
    """Handlers such as the admin e-mail report print the record's request and its full URL."""
    secret = account.hook_secret
    redaction._known_secrets.clear()
    request = rf.get(f"/hooks/vtex/{account.pk}/{secret}/?x=1", HTTP_KEY=secret)
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s: %s", ("Method Not Allowed", request.path), None)
    record.request = request
    assert redaction.RedactingFilter().filter(record)
    shown = " ".join([record.getMessage(), record.request.path, record.request.get_full_path(),
                      record.request.build_absolute_uri(), repr(record.request.META), repr(dict(record.request.headers))])
    assert secret not in shown and "[redacted]" in shown
    assert secret in request.path  # the request itself, still being handled, is untouched


def test_gunicorn_access_lines_are_redacted(account, fresh_worker):
    logger = logging.getLogger("gunicorn.access")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)  # what gunicorn installs for --access-logfile
    logger.addHandler(handler)
    try:
        logger.info('%(h)s "%(r)s" %(s)s', {"h": "10.0.0.1", "r": f"GET /hooks/vtex/{account.pk}/{GUESSED}/ HTTP/1.1", "s": "405"})
    finally:
        logger.removeHandler(handler)
    assert GUESSED not in buffer.getvalue() and f"/hooks/vtex/{account.pk}/[redacted]" in buffer.getvalue()
