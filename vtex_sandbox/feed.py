"""Feed v3 configuration parsing and an SQS-like message queue (one per app key).

Filters: ``FromWorkflow`` passes the listed statuses (an empty or missing list passes every change);
``FromOrders`` evaluates its JSONata expression on the order after each change (``jsonata``, from the
``jsonata-python`` package, the engine the hub checks expressions with) and passes the change when the
result is ``true``. With ``disableSingleFire: false`` (the default) an order passes only the first
time its expression matches; with ``true``, on every change that matches (VTEX: "even hundreds of times").

Bounds (VTEX's, FACTS.md §1 and §5): retention 345600 (4 days) to 1209600 (14 days) seconds; visibility
timeout 0 to 43200 (12 h) seconds.
"""
import copy
import functools

from .util import make_handle

DEFAULT_FEED_CONFIG = {
    "filter": {"type": "FromWorkflow", "status": ["ready-for-handling", "canceled"]},
    "queue": {"visibilityTimeoutInSeconds": 250, "messageRetentionPeriodInSeconds": 345600},
}
MIN_RETENTION, MAX_RETENTION = 345600, 1209600
MIN_VISIBILITY, MAX_VISIBILITY = 0, 43200
EXPRESSION_TIMEOUT_MS, EXPRESSION_MAX_DEPTH = 1000, 200  # jsonata's own runtime bounds per evaluation


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
    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(400, "filter.expression must be a JSONata expression (a non-empty string).")
    problem = expression_error(expression)
    if problem:
        raise ConfigError(400, f"filter.expression is not valid JSONata: {problem}")
    single = raw.get("disableSingleFire", False)
    if not isinstance(single, bool):
        raise ConfigError(400, "filter.disableSingleFire must be a boolean.")
    return {"type": kind, "expression": expression, "disableSingleFire": single}


@functools.lru_cache(maxsize=64)
def compiled(expression):
    """The parsed JSONata expression (raises ``jsonata.JException`` on a syntax error)."""
    try:
        import jsonata
    except ImportError:  # pragma: no cover - jsonata-python comes with the hub's dependencies
        raise ConfigError(400, "FromOrders filters need the jsonata-python package in the sandbox's Python.") from None
    return jsonata.Jsonata(expression)


def expression_error(expression):
    """None when the expression parses, else the parser's message."""
    try:
        compiled(expression)
    except ConfigError:
        raise
    except Exception as exc:  # jsonata.JException, or the parser's own errors on odd input
        return str(exc) or type(exc).__name__
    return None


def evaluate(expression, document, *, fresh=False):
    """The expression's result on ``document`` (raises on an evaluation error). ``fresh``: parse it
    anew instead of sharing the cached parse (callers outside the sandbox lock)."""
    expr = compiled.__wrapped__(expression) if fresh else compiled(expression)
    frame = expr.create_frame()
    frame.set_runtime_bounds(EXPRESSION_TIMEOUT_MS, EXPRESSION_MAX_DEPTH)
    return expr.evaluate(document, frame)


def expression_matches(expression, document):
    """True only when the expression evaluates to ``true`` (an error or any other value: no match)."""
    try:
        return evaluate(expression, document) is True
    except ConfigError:
        raise
    except Exception:
        return False


def filter_passes(flt, status, order=None, fired=None):
    """Whether a change to ``status`` (the order now being ``order``) goes to this feed or hook.

    ``fired`` holds the ids of the orders a single-fire FromOrders filter has passed already (a set,
    or a list in a hook's JSON state); a pass is recorded in it.
    """
    if flt["type"] != "FromOrders":
        return not flt["status"] or status in flt["status"]
    if order is None or not expression_matches(flt["expression"], order):
        return False
    if not flt.get("disableSingleFire") and fired is not None:
        order_id = order["orderId"]
        if order_id in fired:
            return False
        fired.add(order_id) if isinstance(fired, set) else fired.append(order_id)
    return True


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
    if not MIN_VISIBILITY <= visibility <= MAX_VISIBILITY:
        raise ConfigError(400, f"queue.visibilityTimeoutInSeconds must be within {MIN_VISIBILITY}..{MAX_VISIBILITY}.")
    if not MIN_RETENTION <= retention <= MAX_RETENTION:
        raise ConfigError(400, f"queue.MessageRetentionPeriodInSeconds must be within {MIN_RETENTION} (4 days).."
                               f"{MAX_RETENTION} (14 days).")
    return {"filter": flt, "queue": {"visibilityTimeoutInSeconds": visibility,
                                     "messageRetentionPeriodInSeconds": retention}}


class FeedQueue:
    """Messages for one app key. Not thread-safe by itself: the Sandbox lock guards it."""

    def __init__(self, config):
        self.config = copy.deepcopy(config)
        self.messages = {}  # message id -> message dict (insertion order = FIFO order)
        self.handles = {}   # handle -> message id (every handle ever issued for a live message)
        self.next_id = 1
        self.fired = set()  # orders a single-fire FromOrders filter has passed already

    def to_state(self):
        """A JSON-ready copy (the state file): config, messages with their handles, the next message id."""
        messages = [copy.deepcopy(m) for m in self.messages.values()]
        return {"config": copy.deepcopy(self.config), "messages": messages,
                "next_id": self.next_id, "fired": sorted(self.fired)}

    @classmethod
    def from_state(cls, state):
        try:
            config = parse_feed_config(copy.deepcopy(state["config"]))
        except ConfigError:  # saved under older, looser bounds: keep it as it was accepted then
            config = state["config"]
        queue = cls(config)
        for message in state.get("messages", []):
            message = copy.deepcopy(message)
            queue.messages[message["id"]] = message
            for handle in message["handles"]:
                queue.handles[handle] = message["id"]
        queue.next_id = max(int(state.get("next_id", 1)), max(queue.messages, default=0) + 1)
        queue.fired = set(state.get("fired", []))
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
