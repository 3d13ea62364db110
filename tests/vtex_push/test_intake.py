"""POST /hooks/vtex/<store>/<secret>/: ping, secrets, validation, storing, dedupe with the feed."""
import io
import json

import pytest
from django.db import OperationalError
from django.test import Client, RequestFactory

from integration.pipeline.feed_cycle import run_feed_cycle
from integration.vtex_push import intake
from integration.vtex_push.views import vtex_hook
from integration.pipeline.inbox import make_change_key
from integration.models import Account, FeedEvent, Order
from tests.fake_feed import FakeFeed, feed_item
from tests.vtex_push.payloads import notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispatches(monkeypatch):
    """Every enqueue_dispatch call (the task itself is not run)."""
    calls = []
    monkeypatch.setattr("integration.queueing.enqueue_dispatch", lambda account_id=None: calls.append(account_id))
    return calls


def error_of(response):
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


# --- ping -------------------------------------------------------------------------------------
def test_ping_answers_200_and_stores_nothing(post_hook, account, vtex):
    response = post_hook({"hookConfig": "ping"})
    assert response.status_code == 200 and response.json() == {"ping": True}
    assert FeedEvent.objects.count() == 0
    account.refresh_from_db()
    assert account.last_hook_at is None  # a ping is not a notification
    assert len(vtex.calls) == 0


def test_ping_needs_the_secret(post_hook, account):
    assert post_hook({"hookConfig": "ping"}, path=f"/hooks/vtex/{account.pk}/wrong-secret/").status_code == 401


# --- a notification -----------------------------------------------------------------------------
def test_notification_is_stored_routed_and_dispatch_enqueued(post_hook, account, vtex, dispatches):
    response = post_hook(notification())
    assert response.status_code == 200 and response.json() == {"stored": True}
    event = FeedEvent.objects.get()
    assert (event.source, event.order_id, event.state, event.last_state, event.domain) == (
        "hook", "1001-01", "ready-for-handling", "window-to-cancel", "Fulfillment")
    assert event.current_change == "2026-11-27T10:00:00.1234567Z" and event.last_change == "2026-11-27T09:59:00.0000000Z"
    assert event.change_key == make_change_key(account.pk, "1001-01", "ready-for-handling", "2026-11-27T10:00:00.1234567Z")
    assert event.payload == notification() and event.error == "" and event.routed_at is not None
    assert Order.objects.filter(account=account, order_id="1001-01").exists()
    assert dispatches == [account.pk]
    account.refresh_from_db()
    assert account.last_hook_at is not None
    assert len(vtex.calls) == 0  # nothing calls VTEX (or an ERP) inside the request


def test_last_hook_at_is_written_at_most_every_few_seconds(post_hook, account):
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert post_hook(notification("1-01")).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert post_hook(notification("2-01")).status_code == 200
    # The store's row is not updated on every request: on PostgreSQL that row lock serialised them.
    assert not [q for q in queries.captured_queries if q["sql"].startswith('UPDATE "integration_account"')]
    stale = Account.objects.get(pk=account.pk).last_hook_at - timedelta(seconds=60)
    Account.objects.filter(pk=account.pk).update(last_hook_at=stale)
    assert post_hook(notification("3-01")).status_code == 200
    assert Account.objects.get(pk=account.pk).last_hook_at > stale


def test_the_same_change_twice_by_hook_is_one_event(post_hook, account, dispatches):
    assert post_hook(notification()).json() == {"stored": True}
    second = post_hook(notification())
    assert second.status_code == 200 and second.json() == {"duplicate": True}
    event = FeedEvent.objects.get()
    assert event.duplicates == 1
    assert Order.objects.count() == 1
    assert dispatches == [account.pk]  # only the new event enqueues dispatch
    # Another change of the same order is another event.
    assert post_hook(notification(change="2026-11-27T11:00:00Z")).json() == {"stored": True}
    assert FeedEvent.objects.count() == 2


def test_the_same_instant_in_another_spelling_is_a_duplicate(post_hook):
    assert post_hook(notification(change="2026-11-27T10:00:00.1234567Z")).json() == {"stored": True}
    assert post_hook(notification(change="2026-11-27T07:00:00.12345670-03:00")).json() == {"duplicate": True}
    assert FeedEvent.objects.count() == 1


def test_without_current_change_the_last_change_is_the_key(post_hook, account):
    body = notification()
    del body["CurrentChange"], body["LastState"]  # VTEX's Marketplace example has neither
    assert post_hook(body).json() == {"stored": True}
    event = FeedEvent.objects.get()
    assert event.current_change == "" and event.last_state == ""
    assert event.change_key == make_change_key(account.pk, "1001-01", "ready-for-handling", "2026-11-27T09:59:00Z")
    assert post_hook(notification(change=None, LastState=None)).json() == {"duplicate": True}


def test_field_names_are_matched_without_case(post_hook):
    body = {k.lower(): v for k, v in notification().items()}
    body["origin"] = {"account": "TestStore", "key": "k"}
    assert post_hook(body).json() == {"stored": True}


# --- hook and feed ------------------------------------------------------------------------------
def test_hook_then_feed_is_one_event_and_the_feed_handle_is_still_committed(post_hook, account, vtex):
    feed = FakeFeed(vtex)
    assert post_hook(notification("1-01")).json() == {"stored": True}
    feed.add(feed_item("1-01"))
    summary = run_feed_cycle(account)
    assert summary.ok and summary.new == 0 and summary.duplicate == 1
    assert feed.committed == [feed_item("1-01")["handle"]]
    event = FeedEvent.objects.get()
    assert event.source == "hook" and event.duplicates == 1


def test_feed_then_hook_is_a_duplicate(post_hook, account, vtex):
    feed = FakeFeed(vtex)
    feed.add(feed_item("2-01", change="2026-11-27T10:00:00.1234567Z"))
    assert run_feed_cycle(account).new == 1
    response = post_hook(notification("2-01", change="2026-11-27T10:00:00.1234567+00:00"))
    assert response.json() == {"duplicate": True}
    assert FeedEvent.objects.get().source == "feed"


# --- secrets ------------------------------------------------------------------------------------
def test_secret_in_the_key_header_without_the_path_form(client, account):
    url = f"/hooks/vtex/{account.pk}/"
    body = json.dumps(notification())
    ok = client.post(url, data=body, content_type="application/json", headers={"key": account.hook_secret})
    assert ok.status_code == 200 and ok.json() == {"stored": True}
    assert client.post(url, data=body, content_type="application/json").status_code == 401
    assert client.post(url, data=body, content_type="application/json", headers={"key": "nope"}).status_code == 401
    assert client.post(url, data=body, content_type="application/json", headers={"key": ""}).status_code == 401


def test_wrong_secret_in_the_path_is_401_even_with_the_right_header(client, account):
    # The path form decides: a URL with a wrong secret in it is wrong.
    response = client.post(f"/hooks/vtex/{account.pk}/not-the-secret/", data=json.dumps(notification()),
                           content_type="application/json", headers={"key": account.hook_secret})
    assert response.status_code == 401 and "secret" in error_of(response)
    assert FeedEvent.objects.count() == 0


def test_another_stores_secret_is_401(post_hook, account, make_account):
    other = make_account(name="Other", account_name="other", app_key="vtexappkey-other-XYZ")
    response = post_hook(notification(), path=f"/hooks/vtex/{account.pk}/{other.hook_secret}/")
    assert response.status_code == 401
    assert FeedEvent.objects.count() == 0


def test_non_ascii_secret_is_401_not_an_error(post_hook, account):
    assert post_hook(notification(), path=f"/hooks/vtex/{account.pk}/s%C3%A9cr%C3%A9t/").status_code == 401


def test_trailing_slash_is_optional(post_hook, account):
    assert post_hook(notification(), path=f"/hooks/vtex/{account.pk}/{account.hook_secret}").status_code == 200


def test_csrf_does_not_apply(account):
    client = Client(enforce_csrf_checks=True)
    response = client.post(f"/hooks/vtex/{account.pk}/{account.hook_secret}/", data=json.dumps(notification()), content_type="application/json")
    assert response.status_code == 200


@pytest.mark.parametrize("store", ["999999", "abc", "99999999999999999999999999", "-1"])
def test_unknown_store_is_404(client, store):
    response = client.post(f"/hooks/vtex/{store}/whatever/", data=json.dumps(notification()), content_type="application/json")
    assert response.status_code == 404 and error_of(response) == "Unknown store."


def test_unreadable_secret_is_503_so_vtex_retries(post_hook, settings):
    from cryptography.fernet import Fernet

    settings.HUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key that encrypted it is gone
    response = post_hook(notification())
    assert response.status_code == 503 and response["Retry-After"]
    assert FeedEvent.objects.count() == 0


def _without_key(key):
    body = notification()
    del body[key]
    return body


# --- the store ----------------------------------------------------------------------------------
def test_origin_of_another_account_is_accepted_and_recorded_not_routed(post_hook, account):
    # Sent with this store's secret: VTEX, for another account (a franchise or seller account).
    # A 4xx would only make VTEX retry it for days; it is recorded for the operator instead.
    response = post_hook(notification(account_name="someoneelse"))
    assert response.status_code == 200
    answer = response.json()
    assert answer["recorded"] is True and answer["routed"] is False
    assert "Origin.Account 'someoneelse' is not this store's VTEX account 'teststore'" in answer["reason"]
    event = FeedEvent.objects.get()
    assert event.source == "hook" and event.order_id == "1001-01" and event.state == "ready-for-handling"
    assert "someoneelse" in event.error and event.routed_at is not None
    assert not Order.objects.exists()  # routed nothing
    # VTEX delivering the same body again changes nothing.
    assert post_hook(notification(account_name="someoneelse")).status_code == 200
    assert FeedEvent.objects.count() == 1


@pytest.mark.parametrize("body, problem", [
    (notification(State=None), "State is null"),
    (_without_key("State"), "State is missing"),
    (notification(State="  "), "State is empty"),
])
def test_a_null_or_missing_state_is_accepted_and_recorded_as_malformed(post_hook, body, problem):
    response = post_hook(body)
    assert response.status_code == 200 and response.json()["recorded"] is True
    event = FeedEvent.objects.get()
    assert problem in event.error and event.routed_at is not None
    assert not Order.objects.exists()


def test_a_bad_secret_is_still_401_whatever_the_body(client, account):
    for body in (notification(account_name="someoneelse"), notification(State=None)):
        response = client.post(f"/hooks/vtex/{account.pk}/", data=json.dumps(body), content_type="application/json",
                               headers={"key": "not-the-secret"})
        assert response.status_code == 401
    assert FeedEvent.objects.count() == 0


def test_inactive_store_is_410(post_hook, account):
    Account.objects.filter(pk=account.pk).update(active=False)
    response = post_hook(notification())
    assert response.status_code == 410 and "inactive" in error_of(response)
    assert FeedEvent.objects.count() == 0


def test_paused_store_still_receives(post_hook, account):
    account.set_paused(True)
    assert post_hook(notification()).json() == {"stored": True}


@pytest.mark.parametrize("mode", ["feed", "hook", "both"])
def test_every_intake_mode_accepts_notifications(post_hook, account, mode):
    # Feed-only stores too: VTEX may still push while the operator switches modes, and the
    # change_key makes a later feed delivery of the same change a duplicate.
    Account.objects.filter(pk=account.pk).update(intake_mode=mode)
    assert post_hook(notification()).json() == {"stored": True}


# --- bad input ----------------------------------------------------------------------------------
def _without(key, origin_key=None):
    body = notification()
    if origin_key:
        del body["Origin"][origin_key]
    else:
        del body[key]
    return body


@pytest.mark.parametrize("body, field", [
    (_without("Domain"), "Domain"),
    (_without("OrderId"), "OrderId"),
    (_without("LastChange"), "LastChange"),
    (_without("Origin"), "Origin"),
    (_without(None, "Account"), "Origin.Account"),
    (_without(None, "Key"), "Origin.Key"),
    (notification(OrderId=1001), "OrderId"),
    (notification(OrderId=None), "OrderId"),
    (notification(OrderId="   "), "OrderId"),
    (notification(OrderId="x" * 65), "OrderId"),
    (notification(State=["ready-for-handling"]), "State"),
    (notification(Domain={"a": 1}), "Domain"),
    (notification(LastChange="yesterday"), "LastChange"),
    (notification(LastChange="2026-13-45T99:00:00Z"), "LastChange"),
    (notification(LastChange="0001-01-01T00:00:00+01:00"), "LastChange"),
    (notification(CurrentChange=20261127), "CurrentChange"),
    (notification(CurrentChange="soon"), "CurrentChange"),
    (notification(LastState=False), "LastState"),
    (notification(Origin="teststore"), "Origin"),
    (notification(Origin={"Account": 7, "Key": "k"}), "Origin.Account"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_missing_or_mistyped_field_is_400_naming_it(post_hook, body, field):
    response = post_hook(body)
    assert response.status_code == 400
    message = error_of(response)
    assert message.startswith(field + " "), message
    assert FeedEvent.objects.count() == 0


@pytest.mark.parametrize("raw, words", [
    (b"not json", "not valid JSON"),
    (b"", "empty"),
    (b"   ", "empty"),
    (b"[1, 2]", "array"),
    (b'"ping"', "string"),
    (b"null", "null"),
    (b"\xff\xfe{}", "UTF-8"),
    (b'{"OrderId": NaN}', "not valid JSON"),
    (b'{"OrderId": 1e999}', "not valid JSON"),
    (b'{"OrderId": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "nested"),
    (b"[" * 40 + b"]" * 40, "nested"),
    (json.dumps(notification(OrderId="10\x0001-01")).encode(), "NUL"),
    (b'{"OrderId": "\\ud800"}', "surrogate"),
])
def test_bodies_that_are_not_a_notification_are_400(post_hook, raw, words):
    response = post_hook(raw)
    assert response.status_code == 400
    assert words in error_of(response)
    assert FeedEvent.objects.count() == 0


def test_utf8_bom_is_accepted(post_hook):
    assert post_hook(b"\xef\xbb\xbf" + json.dumps(notification()).encode()).status_code == 200


# --- size -----------------------------------------------------------------------------------------
def _padded(size):
    body = notification(Padding="")
    body["Padding"] = "x" * (size - len(json.dumps(body)))
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


def test_a_body_of_exactly_64_kib_is_accepted(post_hook):
    assert post_hook(_padded(64 * 1024)).json() == {"stored": True}


def test_a_body_over_64_kib_is_413(post_hook):
    response = post_hook(_padded(64 * 1024 + 1))
    assert response.status_code == 413
    assert FeedEvent.objects.count() == 0


def test_a_declared_length_over_64_kib_is_413_before_anything_is_read(client, account):
    response = client.post(f"/hooks/vtex/{account.pk}/{account.hook_secret}/", data=b"{}", content_type="application/json",
                           CONTENT_LENGTH=str(10 * 1024 * 1024))
    assert response.status_code == 413


def test_the_bytes_read_count_even_without_content_length(account):
    # A chunked upload has no Content-Length: the limit applies to what is actually read.
    raw = _padded(64 * 1024 + 100)
    request = RequestFactory().post("/hooks/vtex/x/y/", data=raw, content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request._stream = io.BytesIO(raw)
    response = vtex_hook(request, str(account.pk), account.hook_secret)
    assert response.status_code == 413
    assert FeedEvent.objects.count() == 0


def test_bad_content_length_is_400(client, account):
    response = client.post(f"/hooks/vtex/{account.pk}/{account.hook_secret}/", data=b"{}", content_type="application/json",
                           CONTENT_LENGTH="lots")
    assert response.status_code == 400


# --- methods and failures -------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "put", "delete", "patch", "head", "options"])
def test_only_post(client, hook_path, method):
    response = getattr(client, method)(hook_path)
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_database_outage_is_503_so_vtex_retries(post_hook, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("integration.pipeline.inbox.store_events", down)
    response = post_hook(notification())
    assert response.status_code == 503 and response["Retry-After"] == "30"


def test_unexpected_error_is_503_never_500(post_hook, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(intake, "store_notification", boom)
    response = post_hook(notification())
    assert response.status_code == 503 and "a bug" not in response.content.decode()


def test_a_failing_enqueue_does_not_lose_the_answer(post_hook, monkeypatch):
    def broker_down(account_id=None):
        raise ConnectionError("redis is down")

    monkeypatch.setattr("integration.queueing.enqueue_dispatch", broker_down)
    assert post_hook(notification()).json() == {"stored": True}
    assert FeedEvent.objects.count() == 1


def test_no_answer_contains_the_secret(post_hook, account, client):
    secret = account.hook_secret
    answers = [post_hook(notification()), post_hook(notification(account_name="x")), post_hook(b"nope"),
               post_hook({"hookConfig": "ping"}), client.get(f"/hooks/vtex/{account.pk}/{secret}/")]
    for response in answers:
        assert secret not in response.content.decode()
