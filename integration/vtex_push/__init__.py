"""Hook intake: VTEX pushes order status changes to us instead of (or besides) the feed.

- `intake`: find the store, check its secret, read and validate the body (no HTTP framework
  beyond the request object, every refusal a `HookRejected(status, message)`), then store the
  notification through the inbox shared with the feed.
- `views`: the thin POST endpoint, `urls`: its two URL forms.
- `registration`: configure, re-configure (daily) and remove the hook in VTEX.
"""
