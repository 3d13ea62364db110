"""One poison feed item is recorded as malformed and committed; its neighbours go on (issue:
one bad item used to fail its whole batch at every cycle, on PostgreSQL)."""
import json

import pytest

from integration.bounds import Unstorable, clean_json, clean_text, make_storable
from integration.models import FeedEvent, OrderSync
from integration.pipeline import inbox
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.pipeline.inbox import IncomingEvent, make_change_key
from tests.fake_feed import feed_item

pytestmark = pytest.mark.django_db


def poison(order_id, **change):
    item = feed_item(order_id)
    item.update(change)
    return item


POISONS = {
    "domain over its column (41 characters)": poison("9-01", domain="D" * 41),
    "domain of 64 characters (was cut to 64, column holds 40)": poison("9-02", domain="D" * 64),
    "currentChange over 40": poison("9-03", currentChange="2026-11-27T10:00:00.1234567Z" + "9" * 30),
    "lastChange over 40": poison("9-04", lastChange="x" * 41),
    "NUL in orderId": poison("9-05", orderId="9-\x0005"),
    "NUL in a payload value": poison("9-06", extra={"note": "a\x00b"}),
    "lone surrogate in state": poison("9-07", state="ready-for-handling\ud800"),
    "lone surrogate in a payload key": poison("9-08", **{"k\udc00": 1}),
    "orderId over 64": poison("9-09", orderId="9" * 65),
    "payload nested 200 deep": poison("9-10", extra=json.loads("[" * 200 + "]" * 200)),
}


@pytest.mark.parametrize("bad", POISONS.values(), ids=list(POISONS))
def test_a_poison_item_is_kept_as_malformed_and_its_batch_goes_on(account, bindings, feed, oms, recorder, bad):
    good = [feed_item(f"{n}-01") for n in range(1, 5)]
    feed.add(good[0], good[1], bad, good[2], good[3])
    summary = run_feed_cycle(account)
    assert summary.ok, summary.error
    assert summary.new == 5 and summary.malformed == 1 and summary.committed == 5
    assert set(feed.committed) == {i["handle"] for i in good + [bad]}
    for item in good:
        key = make_change_key(account.pk, item["orderId"], item["state"], item["currentChange"])
        event = FeedEvent.objects.get(change_key=key)
        assert event.error == "" and event.committed_at is not None
    malformed = FeedEvent.objects.exclude(error="").get()
    assert malformed.error.startswith("Malformed feed item") and malformed.committed_at is not None
    assert malformed.routed_at is not None and malformed.handle == bad["handle"]
    assert OrderSync.objects.filter(order__order_id__in=[i["orderId"] for i in good]).count() == 8  # 4 orders x 2 bindings
    # Nothing of it blocks the next cycle: VTEX has nothing left to offer again.
    assert run_feed_cycle(account).fetched == 0


def test_a_batch_the_database_refuses_is_stored_item_by_item(account, bindings, recorder):
    """An event the parser let through but the database refuses (here a lone surrogate, which no
    database driver can encode) is kept as malformed with the database's reason; the rest are stored."""
    def event(order_id, **fields):
        return IncomingEvent(source="feed", payload={"orderId": order_id}, order_id=order_id, state="ready-for-handling",
                             handle=f"h-{order_id}", current_change="2026-11-27T10:00:00.1234567Z", **fields)

    batch = [event("1-01"), event("2-\ud800-01"), event("3-01")]
    result = inbox.store_events(account, batch)
    assert result.new == 3 and result.malformed == 1 and len(result.new_event_ids) == 2  # the two to route
    assert set(FeedEvent.objects.filter(error="").values_list("order_id", flat=True)) == {"1-01", "3-01"}
    refused = FeedEvent.objects.exclude(error="").get()
    assert "The database refused this item" in refused.error and "UnicodeEncodeError" in refused.error
    assert refused.handle == ""  # not storable either
    assert refused.payload == {"unstorable_raw": '{"orderId": "2-\\ud800-01"}'}  # the raw payload, escaped
    assert batch[1].error  # the caller's list holds the malformed form, so mark_committed finds it
    inbox.mark_committed(account, batch)
    assert FeedEvent.objects.filter(committed_at__isnull=True).count() == 0
    assert OrderSync.objects.filter(order__order_id__in=["1-01", "3-01"]).count() == 4


# --- the bounds themselves ------------------------------------------------------------------------------
def test_clean_text_and_clean_json_name_the_field_and_the_reason():
    assert clean_text("ok", field="state", max_length=2) == "ok"
    for value, reason in [("a\x00", "NUL"), ("\ud800", "surrogate"), ("abc", "at most 2"), (3, "not a string")]:
        with pytest.raises(Unstorable) as info:
            clean_text(value, field="state", max_length=2)
        assert info.value.field == "state" and reason in info.value.reason and str(info.value).startswith("state ")
    deep = json.loads("[" * 70 + "]" * 70)
    for value, reason in [(deep, "nested"), ({"a\x00": 1}, "key"), ({"a": ["\udfff"]}, "surrogate"), ("x" * 100, "larger"),
                          (float("nan"), "finite"), (10**5000, "digits"), ({1: 2}, "key")]:
        with pytest.raises(Unstorable) as info:
            clean_json(value, field="payload", max_bytes=50 if reason == "larger" else 10_000)
        assert reason in info.value.reason, (value if not isinstance(value, int) else "big int", info.value.reason)


def _nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def test_make_storable_keeps_whatever_arrived_as_storable_text():
    assert make_storable({"a": 1}) == {"a": 1}
    for raw in ["a\x00b", {"k\ud800": 1}, _nested(50_000), b"\xff\x00", 10**5000, object()]:
        kept = make_storable(raw)
        text = kept["unstorable_raw"]
        clean_json(kept, field="kept")  # storable by the same rules
        assert len(text) <= 64 * 1024 + 100
    assert "\\u0000" in make_storable("a\x00b")["unstorable_raw"]
    assert "cut" in make_storable(["x" * 70_000])["unstorable_raw"]


def test_a_handle_that_cannot_be_stored_is_still_committed(account, bindings, feed, oms, recorder):
    bad = feed_item("9-01", handle="handle-\x00-\ud800")
    feed.add(feed_item("1-01"), bad)
    summary = run_feed_cycle(account)
    assert summary.ok and summary.malformed == 1 and summary.committed == 2
    assert bad["handle"] in feed.committed  # else VTEX offers it again at every visibility timeout
    assert FeedEvent.objects.exclude(error="").get().handle == ""


def test_an_order_brought_in_by_id_is_bounded_too(account, bindings, vtex, recorder):
    """sync_order (backfill, reconciliation) builds its event from VTEX's order JSON."""
    from integration.pipeline.sync_order import sync_order
    from tests.fake_feed import BASE

    vtex.get(f"{BASE}/api/oms/pvt/orders/1-01", json={"orderId": "1-01" + "x" * 70, "status": "ready-for-handling\x00",
                                                      "lastChange": "2026-11-27T10:00:00.1234567Z"})
    result = sync_order(account, "1-01")
    assert result.new == 1 and result.malformed == 1
    row = FeedEvent.objects.get()
    assert "order_id is 74 characters long" in row.error and "state contains a NUL" in row.error
    assert row.order_id == "" and OrderSync.objects.count() == 0
