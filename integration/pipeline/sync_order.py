"""Bring one order in by id (onboarding, backfill, an order the feed lost), through the inbox."""
from integration.pipeline import inbox
from integration.models import EventSource
from integration.pipeline.vtex_access import client_for


def sync_order(account, order_id, client=None, source=EventSource.SYNC_ORDER, raw=None):
    """Fetch the order (unless the caller has just fetched it: `raw`) and store its current status
    as an inbox event, routed like any other (and dispatched: `inbox.take_in`).

    Returns the StoreResult: new == 0 means the hub already had this change.
    """
    if raw is None:
        client = client or client_for(account)
        raw = client.get_order(order_id)
    event = inbox.IncomingEvent(
        source=source,
        payload={"orderId": raw.get("orderId", order_id), "status": raw.get("status"), "lastChange": raw.get("lastChange")},
        order_id=str(raw.get("orderId") or order_id),
        state=str(raw.get("status") or ""),
        current_change=str(raw.get("lastChange") or raw.get("creationDate") or ""),
    )
    if not event.state:
        event.error = "The order has no status"
    return inbox.take_in(account, [inbox.bound_event(event)])
