"""Property-based: no body gives a 500 (or a 503, which would mean the database refused a value the
validation let through), and nothing invalid is ever stored."""
import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, event as note, given, settings, strategies as st

from integration.pipeline.inbox import make_change_key
from integration.models import FeedEvent
from tests.vtex_push.payloads import notification

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ANSWERS = {200, 400}  # the secret is right, so never 401/403/404; never 500 or 503

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones() | st.none()).map(lambda d: d.isoformat()),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?\Z"),
)
mutant = st.one_of(json_values, st.text(max_size=80), timestamps)


order_ids = st.from_regex(r"\A[0-9]{1,13}-0[1-9]\Z")
OPERATIONS = ["drop", "replace", "replace", "recase-key", "recase-value", "pad", "add"]


@st.composite
def mutated(draw):
    """A valid notification (of a fresh order and change) with 0 to 3 mutations."""
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.timezones()))
    body = notification(draw(order_ids), change=moment.isoformat())
    for _ in range(draw(st.integers(0, 3))):
        inside = draw(st.booleans()) and isinstance(body.get("Origin"), dict)
        target = body["Origin"] if inside else body
        operation = draw(st.sampled_from(OPERATIONS))
        if operation == "add" or not target:
            target[draw(st.text(max_size=12))] = draw(json_values)
            continue
        key = draw(st.sampled_from(sorted(target)))
        value = target[key]
        if operation == "drop":
            del target[key]
        elif operation == "replace":
            target[key] = draw(mutant)
        elif operation == "recase-key":
            target[draw(st.sampled_from([key.lower(), key.upper()]))] = target.pop(key)
        elif isinstance(value, str):
            target[key] = value.upper() if operation == "recase-value" else draw(st.sampled_from([" ", "\t", "\n", "\u00a0"])) + value + " "
    return body


bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),        # arbitrary JSON values (NaN and Infinity included)
    mutated().map(lambda v: json.dumps(v).encode()),          # notifications with fields dropped or replaced
    mutated().map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),                                   # not even text
)


def same_json(a, b):
    """Equal as JSON. PostgreSQL's jsonb keeps numbers as decimals: 3.9e+16 comes back as an int."""
    def canon(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, list):
            return [canon(x) for x in v]
        return {k: canon(x) for k, x in v.items()}

    return canon(a) == canon(b)


def assert_store_is_clean(account):
    for event in FeedEvent.objects.all():
        assert event.source == "hook"
        if event.error:  # recorded, not routed: an unexpected State or Origin.Account, said so
            assert event.error.startswith("Unexpected notification: ") and event.routed_at is not None
            continue
        assert event.order_id.strip() and event.state.strip() and (event.current_change or event.last_change).strip()
        assert event.change_key == make_change_key(account.pk, event.order_id, event.state, event.current_change or event.last_change)


@FUZZ
@given(body=bodies)
def test_no_body_gives_a_server_error_and_only_valid_notifications_are_stored(post_hook, account, body):
    before = FeedEvent.objects.count()
    response = post_hook(body)
    assert response.status_code in ANSWERS, (response.status_code, response.content)
    answer = response.json()
    note(f"{response.status_code} {'stored' if answer.get('stored') else sorted(answer)}")  # --hypothesis-show-statistics
    after = FeedEvent.objects.count()
    if answer.get("recorded"):
        assert after - before in (0, 1)  # 0: the same unexpected body was recorded before
    else:
        assert after == before + (1 if answer.get("stored") else 0)
    if response.status_code != 200:
        assert set(answer) == {"error"} and answer["error"]
    assert_store_is_clean(account)


@FUZZ
@given(body=mutated())
def test_a_stored_notification_is_what_was_sent(post_hook, account, body):
    response = post_hook(body)
    assert response.status_code in ANSWERS
    note(f"{response.status_code} {response.json()}"[:40])
    if response.json().get("stored"):
        event = FeedEvent.objects.order_by("-id").first()
        assert same_json(event.payload, body)
        fields = {}
        for key, value in body.items():  # names match without case; the first spelling wins
            fields.setdefault(key.lower(), value)
        assert event.order_id == fields["orderid"].strip() and event.state == fields["state"].strip()
    assert_store_is_clean(account)


@FUZZ
@given(content_type=st.text(max_size=40), key=st.text(max_size=40), body=st.binary(max_size=100))
def test_odd_headers_and_wrong_secrets_never_give_a_server_error(client, account, content_type, key, body):
    response = client.generic("POST", f"/hooks/vtex/{account.pk}/", data=body, content_type=content_type.replace("\n", " "),
                              headers={"key": key.encode("latin-1", "replace").decode("latin-1")})
    assert response.status_code in {401, 400, 200}
    assert FeedEvent.objects.count() == 0 or key == account.hook_secret
