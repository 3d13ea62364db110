"""Feed v3 configuration parsing and an SQS-like message queue (one per app key).

Filters: ``FromWorkflow`` passes the listed statuses (an empty or missing list passes every change);
``FromOrders`` passes EVERY status change: the sandbox has no JSONata engine, the expression is stored
and echoed back but not evaluated.
"""
import copy

from .util import make_handle

DEFAULT_FEED_CONFIG = {
    "filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]},
    "queue": {"visibilityTimeoutInSeconds": 250, "messageRetentionPeriodInSeconds": 345600},
}
MAX_RETENTION = 1209600


class ConfigError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_filter(raw):
    if not isinstance(raw, dict):
        raise ConfigError(400, "The filter field is required.")
    kind = raw.get("type")
    if kind not in ("FromWorkflow", "FromOrders"):
        raise ConfigError(400, "filter.type must be FromWorkflow or FromOrders.")
    if kind == "FromWorkflow":
        if "expression" in raw or "disableSingleFire" in raw:
            raise ConfigError(409, "FromWorkflow filters do not accept expression or disableSingleFire.")
        status = raw.get("status") or []
        if not isinstance(status, list) or not all(isinstance(s, str) for s in status):
            raise ConfigError(400, "filter.status must be a list of strings.")
        return {"type": kind, "status": list(status)}
    if "status" in raw:
        raise ConfigError(409, "FromOrders filters do not accept status.")
    expression = raw.get("expression", "")
    if not isinstance(expression, str):
        raise ConfigError(400, "filter.expression must be a string.")
    return {"type": kind, "expression": expression, "disableSingleFire": bool(raw.get("disableSingleFire", False))}


def filter_passes(flt, status):
    if flt["type"] == "FromOrders":
        return True  # no JSONata engine: every change passes (documented)
    return not flt["status"] or status in flt["status"]


def _int_field(queue, name):
    for key, value in queue.items():
        if key.lower() == name.lower():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(400, f"queue.{name} must be an integer.")
            return value
    raise ConfigError(400, f"queue.{name} is required.")


def parse_feed_config(body):
    if not isinstance(body, dict):
        raise ConfigError(400, "The request body must be a JSON object.")
    if "filter" not in body:
        raise ConfigError(400, "The filter field is required.")
    if not isinstance(body.get("queue"), dict):
        raise ConfigError(400, "The queue field is required.")
    flt = parse_filter(body["filter"])
    visibility = _int_field(body["queue"], "visibilityTimeoutInSeconds")
    retention = _int_field(body["queue"], "messageRetentionPeriodInSeconds")
    if visibility < 0:
        raise ConfigError(400, "queue.visibilityTimeoutInSeconds must be >= 0.")
    if not 1 <= retention <= MAX_RETENTION:
        raise ConfigError(400, f"queue.MessageRetentionPeriodInSeconds must be within 1..{MAX_RETENTION}.")
    return {"filter": flt, "queue": {"visibilityTimeoutInSeconds": visibility,
                                     "messageRetentionPeriodInSeconds": retention}}


class FeedQueue:
    """Messages for one app key. Not thread-safe by itself: the Sandbox lock guards it."""

    def __init__(self, config):
        self.config = copy.deepcopy(config)
        self.messages = {}  # message id -> message dict (insertion order = FIFO order)
        self.handles = {}   # handle -> message id (every handle ever issued for a live message)
        self.next_id = 1

    def to_state(self):
        """A JSON-ready copy (the state file): config, messages with their handles, the next message id."""
        messages = [copy.deepcopy(m) for m in self.messages.values()]
        return {"config": copy.deepcopy(self.config), "messages": messages,
                "next_id": self.next_id}

    @classmethod
    def from_state(cls, state):
        queue = cls(parse_feed_config(state["config"]))
        for message in state.get("messages", []):
            message = copy.deepcopy(message)
            queue.messages[message["id"]] = message
            for handle in message["handles"]:
                queue.handles[handle] = message["id"]
        queue.next_id = max(int(state.get("next_id", 1)), max(queue.messages, default=0) + 1)
        return queue

    @property
    def visibility(self):
        return self.config["queue"]["visibilityTimeoutInSeconds"]

    @property
    def retention(self):
        return self.config["queue"]["messageRetentionPeriodInSeconds"]

    def enqueue(self, event, now):
        mid = self.next_id
        self.next_id += 1
        self.messages[mid] = {"id": mid, "event": dict(event), "enqueued_at": now, "visible_at": now,
                              "receives": 0, "handles": []}
        return mid

    def expire(self, now):
        dead = [mid for mid, m in self.messages.items() if now - m["enqueued_at"] >= self.retention]
        for mid in dead:
            self._remove(mid)
        return len(dead)

    def _remove(self, mid):
        message = self.messages.pop(mid, None)
        if message:
            for handle in message["handles"]:
                self.handles.pop(handle, None)
        return message is not None

    def visible(self, now):
        return [m for m in self.messages.values() if m["visible_at"] <= now]

    def receive(self, messages, now, rng, app_key):
        out = []
        for message in messages:
            message["receives"] += 1
            message["visible_at"] = now + self.visibility
            handle = make_handle(rng, app_key, message["id"], message["receives"], now)
            message["handles"].append(handle)
            self.handles[handle] = message["id"]
            event = message["event"]
            out.append({"eventId": event["eventId"], "handle": handle,
                        **{k: v for k, v in event.items() if k != "eventId"}})
        return out

    def commit(self, handles):
        removed = 0
        for handle in handles:
            mid = self.handles.get(handle) if isinstance(handle, str) else None
            if mid is not None and self._remove(mid):
                removed += 1
        return removed

    def depth(self):
        return len(self.messages)

    def oldest_age(self, now):
        if not self.messages:
            return 0
        return max(0.0, now - min(m["enqueued_at"] for m in self.messages.values()))
