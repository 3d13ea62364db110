"""VTEX hook notifications for tests (imported by tests/vtex_push and tests/fuzz)."""


def notification(order_id="1001-01", state="ready-for-handling", *, account_name="teststore",
                 change="2026-11-27T10:00:00.1234567Z", last_change="2026-11-27T09:59:00.0000000Z", **overrides):
    """A notification as VTEX sends it; `change` is CurrentChange (the feed item's currentChange)."""
    body = {
        "Domain": "Fulfillment", "OrderId": order_id, "State": state, "LastState": "window-to-cancel",
        "LastChange": last_change, "CurrentChange": change,
        "Origin": {"Account": account_name, "Key": "vtexappkey-teststore-ABCDEF"},
    }
    body.update(overrides)
    return body
