"""Hook intake without the HTTP framework: find the store, check its secret, read and validate
the body, store the notification. Every refusal is a `HookRejected(status, message)`.

VTEX retries a notification that does not get a 200, on a growing interval, for up to about four
days. So the answer says who must act (docs/vtex-push.md lists every case):
- 200 for anything VTEX sent with this store's secret that the hub can keep: a notification is
  stored and routed; one that is merely unexpected (a null or missing State, an Origin.Account
  other than the store's) is recorded for the operator and not routed. A retry could not change it.
- 401/404/410 for a caller that is not (or no longer) VTEX for this store: a forgery is refused.
- 4xx for a body that cannot be read or stored at all; 503 when the hub cannot store now (a retry will).

What a notification looks like (VTEX's `HookConfiguration` schema; LastState and CurrentChange are
missing from VTEX's own Marketplace example, so they are optional here):
    {"Domain": "Fulfillment", "OrderId": "v52277740atmc-01", "State": "ready-for-handling",
     "LastState": "window-to-cancel", "LastChange": "2019-08-14T17:11:39.2550122Z",
     "CurrentChange": "2019-08-14T17:12:48.0965893Z",
     "Origin": {"Account": "automacaoqa", "Key": "vtexappkey-appvtex"}}
Field names are matched case-insensitively (VTEX's documents are not consistent about case).
"""
import hmac
import json
import logging
import math
import re
from datetime import datetime, timedelta

from django.db.models.functions import Now
from django.utils import timezone
from django.http.request import RawPostDataException

from integration.bounds import Unstorable, clean_json, clean_text, max_length_of
from integration.pipeline import inbox
from integration.crypto import SecretDecryptionError
from integration.pipeline.inbox import IncomingEvent
from integration.models import Account, EventSource, FeedEvent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32  # a notification is two levels deep; anything far deeper is not one
_ACCOUNT_ID = re.compile(r"[0-9]{1,18}")  # a bigint primary key; more digits would overflow the column
_NORMALIZED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z")
# Column sizes of FeedEvent (PostgreSQL enforces them; a too-long value would fail the insert).
MAX_DOMAIN, MAX_ID = max_length_of(FeedEvent, "domain"), max_length_of(FeedEvent, "order_id")
MAX_STATE, MAX_TIME = max_length_of(FeedEvent, "state"), max_length_of(FeedEvent, "last_change")
MAX_ORIGIN_ACCOUNT, MAX_ORIGIN_KEY = 100, 200


class HookRejected(Exception):
    """The request is refused with this HTTP status and message (never a secret in it)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


# --- who is calling --------------------------------------------------------------------------
def _same_secret(given, expected):
    # compare_digest on bytes: constant time, and no TypeError on non-ASCII input.
    return hmac.compare_digest((given or "").encode("utf-8", "replace"), (expected or "").encode("utf-8", "replace"))


def authenticate(account_id, secret):
    """The store the URL names, if `secret` is its hook secret: 404, 401 or 410 otherwise."""
    account = None
    if isinstance(account_id, str) and _ACCOUNT_ID.fullmatch(account_id):
        account = Account.objects.filter(pk=int(account_id)).first()
    if account is None:
        _same_secret(secret, "x" * 32)  # roughly the same work as for a known store
        raise HookRejected(404, "Unknown store.")
    try:
        expected = account.hook_secret
    except SecretDecryptionError:
        log.error("hook for store=%s refused: its hook secret cannot be decrypted with HUB_ENCRYPTION_KEYS", account.account_name)
        raise HookRejected(503, "The hub cannot check this request right now; try again later.") from None
    if not secret or not expected or not _same_secret(secret, expected):
        raise HookRejected(401, "Wrong or missing hook secret.")
    if not account.active:
        raise HookRejected(410, "This store is inactive in the hub: its notifications are refused until it is activated.")
    return account


# --- the body ----------------------------------------------------------------------------------
def check_declared_length(content_length):
    """Refuse by Content-Length before reading anything (and before touching the database)."""
    if content_length in (None, ""):
        return
    try:
        declared = int(content_length)
    except (TypeError, ValueError):
        raise HookRejected(400, "Content-Length is not a number.") from None
    if declared < 0:
        raise HookRejected(400, "Content-Length is negative.")
    if declared > MAX_BODY_BYTES:
        raise HookRejected(413, f"The body is {declared} bytes; a notification is at most {MAX_BODY_BYTES} bytes.")


def read_body(request):
    """At most MAX_BODY_BYTES of the body: the declared length and the bytes actually read both count."""
    check_declared_length(request.META.get("CONTENT_LENGTH"))
    try:
        chunks, total = [], 0
        while total <= MAX_BODY_BYTES:
            chunk = request.read(MAX_BODY_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        raw = b"".join(chunks)
    except RawPostDataException:  # something already read the stream
        raw = request.body
    if len(raw) > MAX_BODY_BYTES:
        raise HookRejected(413, f"The body is over {MAX_BODY_BYTES} bytes; a notification is much smaller.")
    return raw


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _json_kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_storable(data):
    """Every value must fit both databases (the one decision in integration.bounds)."""
    try:
        clean_json(data, field="The body", max_depth=MAX_DEPTH, max_bytes=MAX_BODY_BYTES * 4)
    except Unstorable as exc:
        raise HookRejected(400, f"The body cannot be stored: {exc.reason}.") from None


def decode_json(raw):
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HookRejected(400, "The body is not UTF-8 text.") from None
    if not text.strip():
        raise HookRejected(400, "The body is empty; expected a JSON object.")
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise HookRejected(400, f"The body is nested more than {MAX_DEPTH} levels deep.") from None
    except ValueError as exc:  # JSONDecodeError, and ints longer than Python converts
        raise HookRejected(400, f"The body is not valid JSON: {str(exc)[:200]}") from None
    _check_storable(data)
    return data


def is_ping(data):
    """VTEX's ping when the hook is configured: {"hookConfig": "ping"}."""
    if not isinstance(data, dict):
        return False
    value = _lowered(data).get("hookconfig")
    return isinstance(value, str) and value.strip().lower() == "ping"


def _lowered(mapping):
    out = {}
    for key, value in mapping.items():
        out.setdefault(key.lower(), value)  # the first spelling wins when two differ only in case
    return out


def _text(fields, key, label, max_length, *, required=True):
    value = fields.get(key.lower())
    if value is None:
        if required:
            raise HookRejected(400, f"{label} is missing." if key.lower() not in fields else f"{label} is null; it must be a string.")
        return ""
    if not isinstance(value, str):
        raise HookRejected(400, f"{label} must be a string, not a JSON {_json_kind(value)}.")
    value = value.strip()
    if required and not value:
        raise HookRejected(400, f"{label} is empty.")
    try:
        return clean_text(value, field=label, max_length=max_length)
    except Unstorable as exc:
        raise HookRejected(400, f"{label} {exc.reason}.") from None


def _is_time(value):
    try:
        normalized = inbox.normalize_change_time(value)
        return bool(_NORMALIZED_TIME.fullmatch(normalized)) and datetime.fromisoformat(normalized[:19]) is not None
    except (ValueError, OverflowError):  # e.g. year 1 with a positive offset has no UTC instant
        return False


def _time(fields, key, label, *, required=True):
    value = _text(fields, key, label, MAX_TIME, required=required)
    if value and not _is_time(value):
        raise HookRejected(400, f"{label} is not an ISO 8601 date-time (like 2026-11-27T10:00:00.1234567Z).")
    return value


def _state(fields):
    """(State, problem): a null, missing or empty State is recorded as malformed, like the feed's."""
    value = fields.get("state")
    if value is None:
        return "", "State is null" if "state" in fields else "State is missing"
    if isinstance(value, str) and not value.strip():
        return "", "State is empty"
    state = _text(fields, "State", "State", MAX_STATE)  # a wrong type or an overlong value is still 400
    return state, ""


def parse_notification(data, account):
    """A validated notification as an IncomingEvent (source hook), or HookRejected 400.

    A notification that is only unexpected comes back with `error` set: stored as malformed, not routed."""
    if not isinstance(data, dict):
        raise HookRejected(400, f"The body is a JSON {_json_kind(data)}, not an object.")
    fields = _lowered(data)
    origin = fields.get("origin")
    if origin is None:
        raise HookRejected(400, "Origin is missing." if "origin" not in fields else "Origin is null; it must be an object.")
    if not isinstance(origin, dict):
        raise HookRejected(400, f"Origin must be an object, not a JSON {_json_kind(origin)}.")
    origin_fields = _lowered(origin)
    origin_account = _text(origin_fields, "Account", "Origin.Account", MAX_ORIGIN_ACCOUNT)
    _text(origin_fields, "Key", "Origin.Key", MAX_ORIGIN_KEY)
    problems = []
    if origin_account.lower() != account.account_name.strip().lower():
        # Sent with this store's secret, so by VTEX for this store's hook: a franchise or seller
        # account's order, say. Its order cannot be read with this store's account: recorded, not routed.
        problems.append(f"Origin.Account '{origin_account}' is not this store's VTEX account "
                        f"'{account.account_name}'; recorded, not routed")
    state, state_problem = _state(fields)
    if state_problem:
        problems.append(state_problem)
    return IncomingEvent(
        source=EventSource.HOOK,
        payload=data,
        domain=_text(fields, "Domain", "Domain", MAX_DOMAIN),
        order_id=_text(fields, "OrderId", "OrderId", MAX_ID),
        state=state,
        last_state=_text(fields, "LastState", "LastState", MAX_STATE, required=False),
        last_change=_time(fields, "LastChange", "LastChange"),
        current_change=_time(fields, "CurrentChange", "CurrentChange", required=False),
        error=("Unexpected notification: " + "; ".join(problems)) if problems else "",
    )


def parse_body(raw, account):
    """The request body as an IncomingEvent; None for VTEX's ping. Raises HookRejected."""
    data = decode_json(raw)
    if is_ping(data):
        return None
    return parse_notification(data, account)


# --- storing ------------------------------------------------------------------------------------
LAST_HOOK_RESOLUTION = timedelta(seconds=5)


def _touch_last_hook(account):
    """Record that a notification arrived, at most once per LAST_HOOK_RESOLUTION per store.

    Not in the storing transaction and not on every request: on PostgreSQL an UPDATE of the
    store's row holds its row lock until commit, which serialised every concurrent notification
    of a store (measured with 8 clients: 28 req/s with it, 82 without); on SQLite it is one more
    write.
    """
    last = account.last_hook_at
    if last is None or timezone.now() - last >= LAST_HOOK_RESOLUTION:
        Account.objects.filter(pk=account.pk).update(last_hook_at=Now())


def store_notification(account, event):
    """Store and route through the inbox the feed uses (same change_key, so the same change from
    the feed or a second delivery is a duplicate). True when it was new and routed; an unexpected
    notification (`event.error`) is recorded and never routed, so False."""
    result = inbox.take_in(account, [event])
    _touch_last_hook(account)
    if event.error:
        log.warning("hook for store=%s recorded, not routed: %s", account.account_name, event.error[:300])
        return False
    if result.malformed:  # the database refused a value the checks let through: kept for the operator
        raise HookRejected(400, "The notification could not be stored as it is: it is kept as malformed for the operator.")
    # new_event_ids, not `new`: when a concurrent delivery of the same change won the insert,
    # `new` may still count it while nothing of ours was inserted.
    return bool(result.new_event_ids)
