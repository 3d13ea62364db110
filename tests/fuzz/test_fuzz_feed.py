"""Random and hostile feed items, in batches with valid ones, through the real feed cycle
(retrieve over HTTP, parse, store, route, commit) on the test database."""
import pytest
from hypothesis import event, given, settings, strategies as st

from integration.models import FeedEvent
from integration.pipeline.feed_cycle import run_feed_cycle
from integration.pipeline.inbox import make_change_key
from tests.fake_feed import feed_item
from tests.fuzz.strategies import hostile_values, json_values, scalars, unique

pytestmark = pytest.mark.django_db
FIELDS = ["eventId", "handle", "domain", "state", "lastState", "orderId", "lastChange", "currentChange"]


def valid_item():
    n = unique()
    return feed_item(f"{n}-01", handle=f"h-valid-{n}")


@st.composite
def hostile_item(draw):
    """A valid item with fields replaced, dropped or added; or something that is not an item."""
    n = unique()
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(scalars, st.lists(json_values, max_size=3)))
    item = feed_item(f"{n}-01", handle=f"h-hostile-{n}")
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        key = draw(st.sampled_from(FIELDS))
        if how == "replace":
            item[key] = draw(hostile_values)
        elif how == "drop":
            item.pop(key, None)
        else:
            item[draw(st.text(max_size=12))] = draw(hostile_values)
    item.setdefault("marker", n)  # two hostile items never collapse into one by accident
    return item


@settings(settings.get_profile("hub-fuzz"))
@given(st.lists(st.one_of(st.just(None), hostile_item()), min_size=1, max_size=10))
def test_no_feed_item_blocks_its_batch(account, bindings, feed, oms, recorder, batch):
    items = [valid_item() if b is None else b for b in batch]
    before = FeedEvent.objects.count()
    committed_before = len(feed.committed)
    feed.add(*items)
    summary = run_feed_cycle(account, budget=5)

    assert summary.ok, summary.error  # no exception escaped, storing never failed
    assert summary.fetched == len(items)
    assert FeedEvent.objects.count() - before == summary.new
    assert summary.new + summary.duplicate == len(items)
    valid = [i for i in items if isinstance(i, dict) and str(i.get("handle", "")).startswith("h-valid-")]
    for item in valid:  # nothing valid in the batch is lost
        stored = FeedEvent.objects.get(change_key=make_change_key(account.pk, item["orderId"], item["state"], item["currentChange"]))
        assert stored.error == "" and stored.committed_at is not None
    for row in FeedEvent.objects.filter(pk__gt=0).exclude(error="").order_by("-pk")[: summary.malformed]:
        assert row.error.strip() and row.routed_at is not None  # refused with a reason, never routed
    handles = [i["handle"] for i in items if isinstance(i, dict) and isinstance(i.get("handle"), str) and i["handle"]]
    assert sorted(feed.committed[committed_before:]) == sorted(handles)  # every handle committed
    assert run_feed_cycle(account, budget=5).fetched == 0  # nothing is offered again
    event(f"malformed items in the batch: {summary.malformed}")
    event(f"batch size: {len(items)}")
