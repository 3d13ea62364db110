"""What an operator can do, grouped by subject: stores, their feed configuration, adapter
bindings and syncs; `queries` holds the admin's list figures. Every action returns a
`results.Result` (or, for many rows at once, a `results.Outcome`) whose message the admin shows."""
