"""One log line per failed or retried delivery, to an adapter or to VTEX.

The operator's tail of the worker log says which store, order and adapter failed, how, and when
the next attempt is: without this a 500 or 422 from an ERP was visible only in the admin. The
error is redacted and bounded, and kept on the one line.
"""
import logging

from integration.redaction import excerpt

log = logging.getLogger("integration.deliveries")


def _value(text):
    """A log field's value: redacted, one line, quoted when it has spaces."""
    text = " ".join(excerpt(str(text), 300).split())
    return f'"{text}"' if not text or any(c in text for c in ' "=') else text


def log_failed_delivery(*, store, order, adapter, outcome, attempt, next_attempt, error, action=""):
    """`outcome`: transient (retried at `next_attempt`), permanent or failed (no next attempt:
    it waits for the operator)."""
    when = next_attempt.isoformat(timespec="seconds") if next_attempt is not None else "none"
    fields = [("store", store), ("order", order), ("adapter", adapter)]
    if action:
        fields.append(("action", action))
    fields += [("attempt", attempt), ("outcome", outcome), ("next_attempt", when), ("error", error)]
    line = " ".join(f"{name}={_value(value)}" for name, value in fields)
    (log.warning if next_attempt is not None else log.error)("delivery %s: %s", "retrying" if next_attempt is not None else "failed", line)
