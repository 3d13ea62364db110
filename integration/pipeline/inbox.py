"""The inbox shared by the feed and the hook: parse, deduplicate by change_key, store, route.

Both paths produce the same rows and route them in the transaction that stored them, so an
event is never stored and then forgotten.
"""
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F
from django.db.models.functions import Now

from integration import queueing
from integration.bounds import Unstorable, clean_json, clean_text, make_storable, max_length_of, storable_text
from integration.models import FeedEvent
from integration.pipeline.routing import route_events

_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")

log = logging.getLogger(__name__)


def normalize_change_time(value):
    """One spelling per instant: UTC, seven fractional digits (VTEX's precision), 'Z'.

    The feed and the hook write the same instant with different precision and offsets; the
    dedupe key must not see two changes there.
    """
    text = (value or "").strip()
    match = _TIME.match(text)
    if not match:
        return text
    day, clock, fraction, offset = match.groups()
    fraction = (fraction or "")[:7].ljust(7, "0")
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}{'' if not offset or offset == 'Z' else offset}")
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt_timezone.utc)
    except (ValueError, OverflowError):  # e.g. year 1 with a positive offset: keep the text as given
        return text
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{fraction}Z"


def make_change_key(account_id, order_id, state, change):
    return f"{account_id}|{order_id.strip()}|{state.strip().lower()}|{normalize_change_time(change)}"


@dataclass
class IncomingEvent:
    source: str
    payload: object
    order_id: str = ""
    state: str = ""
    last_state: str = ""
    domain: str = ""
    event_id: str = ""
    handle: str = ""
    last_change: str = ""
    current_change: str = ""
    error: str = ""
    # The handle as VTEX sent it, for the commit: one that cannot be stored (a NUL in it) is
    # still committed, or VTEX would offer the malformed item again for days.
    commit_handle: str = ""

    def change_key(self, account_id):
        if self.error:
            payload = make_storable(self.payload)  # hashable whatever arrived (deep, NUL, surrogates)
            digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8", "backslashreplace")).hexdigest()
            return f"{account_id}|malformed|{digest}"
        return make_change_key(account_id, self.order_id, self.state, self.current_change or self.last_change)


FEED_FIELDS = {
    "eventId": "event_id", "handle": "handle", "domain": "domain", "state": "state",
    "lastState": "last_state", "orderId": "order_id", "lastChange": "last_change", "currentChange": "current_change",
}


def _keys_any_case(item):
    """The item's keys by their lower-case spelling (VTEX's reference consumer reads them without
    regard to case); when two keys differ only in case, the first one wins."""
    lowered = {}
    for key, value in item.items():
        if isinstance(key, str):
            lowered.setdefault(key.lower(), value)
    return lowered


def parse_feed_item(item):
    """A feed item as an IncomingEvent; never raises. Bad items carry `error` and are kept.

    Every field is checked against its column (length, NUL, lone surrogates) and the payload
    against the JSON bounds: a value that cannot be stored makes the item malformed, with its raw
    payload made storable, rather than failing the batch it came in."""
    if not isinstance(item, dict):
        return IncomingEvent(source="feed", payload=make_storable(item), error=f"Feed item is a {type(item).__name__}, not an object")
    event = IncomingEvent(source="feed", payload=item)
    fields = _keys_any_case(item)
    if isinstance(fields.get("handle"), str):
        event.commit_handle = fields["handle"]
    problems = []
    try:
        clean_json(item, field="the item")
    except Unstorable as exc:
        problems.append(str(exc))
        event.payload = make_storable(item)
    for key, attr in FEED_FIELDS.items():
        value = fields.get(key.lower())
        if value is None:
            continue
        try:
            value = clean_text(value, field=key, max_length=max_length_of(FeedEvent, attr))
        except Unstorable as exc:
            problems.append(str(exc))
            continue
        setattr(event, attr, value)
    for key in ("orderId", "state", "handle"):
        if not fields.get(key.lower()) and key not in " ".join(problems):
            problems.append(f"{key} is missing")
    if not (event.current_change or event.last_change):
        problems.append("currentChange and lastChange are missing")
    if problems:
        event.error = "Malformed feed item: " + "; ".join(problems)
    return event


EVENT_TEXT_FIELDS = ("event_id", "handle", "domain", "state", "last_state", "order_id", "last_change", "current_change")


def bound_event(event):
    """Make `event` storable in place: a field or payload that cannot be stored is cleared (the
    payload kept as storable text) and the event becomes malformed, saying why. For the paths
    that build events without parse_feed_item or the hook's checks."""
    problems = []
    for attr in EVENT_TEXT_FIELDS:
        value = getattr(event, attr)
        if not value:
            continue
        try:
            clean_text(value, field=attr, max_length=max_length_of(FeedEvent, attr))
        except Unstorable as exc:
            problems.append(str(exc))
            if attr == "handle" and isinstance(value, str):
                event.commit_handle = event.commit_handle or value
            setattr(event, attr, "")
    try:
        clean_json(event.payload, field="payload")
    except Unstorable as exc:
        problems.append(str(exc))
        event.payload = make_storable(event.payload)
    if problems:
        event.error = storable_text("; ".join(filter(None, [event.error, "Cannot be stored: " + "; ".join(problems)])), 2000)
    return event


@dataclass
class StoreResult:
    new: int = 0
    duplicate: int = 0
    malformed: int = 0
    new_event_ids: list = field(default_factory=list)


# The database itself failing (a PostgreSQL restart cuts the connection; SQLite is locked past
# its timeout), not a value it refuses: storing item by item would keep a healthy event as
# malformed (routed nowhere, and committed) if the database came back between two attempts.
DATABASE_AWAY = (OperationalError, InterfaceError)


def store_events(account, incoming):
    """Store a batch in one transaction, deduplicated by change_key, and route the new ones.

    If the batch cannot be stored (a value the database refuses), its items are stored one by
    one: an item that still fails is kept as malformed, with its raw payload made storable and
    the database's reason, so one poison item never holds back its neighbours."""
    try:
        return _store_batch(account, incoming)
    except DATABASE_AWAY:
        raise  # not a poison item: nothing is stored or committed, VTEX offers the batch again
    except Exception as exc:  # DataError, IntegrityError, UnicodeEncodeError (SQLite), RecursionError...
        if len(incoming) == 1 and incoming[0].error:
            raise  # already the fallback form: the database itself is failing
        first_error = exc
    log.warning("store=%s: a batch of %s events could not be stored (%s: %s); storing them one by one",
                account.account_name, len(incoming), type(first_error).__name__, str(first_error)[:300])
    result = StoreResult()
    for index, event in enumerate(incoming):
        try:
            one = _store_batch(account, [event])
        except DATABASE_AWAY:
            raise
        except Exception as exc:
            # The caller's list gets the malformed form, so it is the one marked committed.
            incoming[index] = event = _as_malformed(event, exc)
            one = _store_batch(account, [event])
        result.new += one.new
        result.duplicate += one.duplicate
        result.malformed += one.malformed
        result.new_event_ids += one.new_event_ids
    return result


def _as_malformed(event, exc):
    return IncomingEvent(
        source=event.source, payload=make_storable(event.payload), handle=_text_or_empty(event.handle),
        event_id=_text_or_empty(event.event_id), commit_handle=event.commit_handle or event.handle,
        error=storable_text(f"The database refused this item: {type(exc).__name__}: {exc}", 1000),
    )


def _text_or_empty(value):
    try:
        return clean_text(value, field="value")
    except Unstorable:
        return ""


def _store_batch(account, incoming):
    by_key, seen = {}, {}
    for event in incoming:
        key = event.change_key(account.pk)
        by_key.setdefault(key, event)
        seen[key] = seen.get(key, 0) + 1
    keys = list(by_key)
    result = StoreResult()
    with transaction.atomic():
        existing = set(FeedEvent.objects.filter(change_key__in=keys).values_list("change_key", flat=True))
        rows = [
            FeedEvent(
                account=account, change_key=key, event_id=e.event_id, handle=e.handle, domain=e.domain,
                state=e.state, last_state=e.last_state, order_id=e.order_id, last_change=e.last_change,
                current_change=e.current_change, source=e.source, payload=e.payload, error=e.error,
                # A malformed item has nothing to route; mark it done so the sweeper leaves it.
                routed_at=Now() if e.error else None, duplicates=seen[key] - 1,
            )
            for key, e in by_key.items()
            if key not in existing
        ]
        # ignore_conflicts: a hook delivery of the same change may commit between our read and write.
        FeedEvent.objects.bulk_create(rows, ignore_conflicts=True)
        # Every field route_events reads: a deferred one would cost a query per event.
        inserted = list(FeedEvent.objects.filter(change_key__in=[r.change_key for r in rows], routed_at__isnull=True)
                        .only("pk", "order_id", "state", "domain", "current_change", "last_change"))
        duplicates_of = [k for k in keys if k in existing]
        for times in {seen[k] for k in duplicates_of}:
            FeedEvent.objects.filter(change_key__in=[k for k in duplicates_of if seen[k] == times]).update(duplicates=F("duplicates") + times)
        route_events(account, inserted)
    result.new = len(rows)
    result.duplicate = len(incoming) - len(rows)
    result.malformed = sum(1 for r in rows if r.error)
    result.new_event_ids = [e.pk for e in inserted]
    return result


def mark_committed(account, incoming):
    keys = [e.change_key(account.pk) for e in incoming]
    FeedEvent.objects.filter(change_key__in=keys, committed_at__isnull=True).update(committed_at=Now())


def take_in(account, incoming):
    """Store and route a batch (`store_events`), then ask dispatch to run when anything is new.

    `new_event_ids`, not `new`: when a concurrent delivery of the same change won the insert,
    `new` may still count it while nothing of ours was inserted.
    """
    stored = store_events(account, incoming)
    if stored.new_event_ids:
        try:
            queueing.enqueue_dispatch(account.pk)
        except Exception:  # the batch is stored and routed; the scheduled dispatcher picks it up
            log.exception("store=%s: could not enqueue dispatch", account.account_name)
    return stored
