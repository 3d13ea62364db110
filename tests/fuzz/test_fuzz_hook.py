"""Random and hostile notification bodies through the real hook endpoint and its storing code."""
import json

import pytest
from hypothesis import event, given, settings, strategies as st

from integration.models import FeedEvent
from tests.fuzz.strategies import hostile_values, json_values, nested, unique
from tests.vtex_push.payloads import notification

pytestmark = pytest.mark.django_db
FIELDS = ["Domain", "OrderId", "State", "LastState", "LastChange", "CurrentChange", "Origin"]
# The database refusing a value means the checks let it through: the fuzz must never see this.
DATABASE_REFUSED = ("could not be stored", "database refused")


@st.composite
def bodies(draw):
    n = unique()
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "value", "deep", "bytes"]))
    if kind == "value":
        return json.dumps(draw(json_values)).encode("utf-8", "surrogatepass"), None
    if kind == "deep":
        return json.dumps(nested(draw(st.integers(20, 900)))).encode(), None
    if kind == "bytes":
        return draw(st.binary(max_size=200)), None
    body = notification(f"{n}-01", change=f"2026-11-27T10:00:{n % 60:02d}.{n:07d}Z"[:28])
    for _ in range(draw(st.integers(0, 3))):
        target = body["Origin"] if draw(st.booleans()) and isinstance(body.get("Origin"), dict) else body
        key = draw(st.sampled_from(sorted(target) or ["Extra"]))
        target[key] = draw(hostile_values)
    # ensure_ascii: lone surrogates and NUL travel as \\ud800 and \\u0000 escapes, as JSON allows
    return json.dumps(body).encode(), body


@settings(settings.get_profile("hub-fuzz"))
@given(bodies())
def test_no_body_is_lost_or_stored_badly(client, account, hook_path, sent):
    raw, body = sent
    before = FeedEvent.objects.count()
    response = client.post(hook_path, data=raw, content_type="application/json")
    answer = response.json()
    assert response.status_code in (200, 400, 403, 413), (response.status_code, answer)
    if response.status_code == 200:
        stored = FeedEvent.objects.count() - before
        kept = answer.get("stored") or answer.get("recorded")
        assert answer.get("stored") or answer.get("duplicate") or answer.get("ping") or answer.get("recorded")
        # A recorded notification (merely unexpected, e.g. another Origin.Account) is kept once,
        # or is a duplicate of one already kept.
        assert stored in ((0, 1) if answer.get("recorded") else (1 if kept else 0,))
        if stored:
            row = FeedEvent.objects.latest("pk")
            assert row.payload is not None
            assert (row.error == "") if answer.get("stored") else (row.error == answer["reason"])
    else:
        assert FeedEvent.objects.count() == before  # a refused body stores nothing...
        assert answer["error"].strip()  # ...and VTEX is told why
        assert not all(phrase in answer["error"] for phrase in DATABASE_REFUSED)
    event(f"HTTP {response.status_code}")


@pytest.fixture
def hook_path(account):
    return f"/hooks/vtex/{account.pk}/{account.hook_secret}/"
