"""The pipeline: one module per stage of an order's way through the hub.

feed_cycle (retrieve, store, commit) and VTEX push intake feed the inbox; the inbox stores events and
routes them into syncs; dispatch claims due syncs and delivers them to adapters; start_handling tells
VTEX once every gating adapter accepted the order. sync_order and reconciliation bring orders in by id
through the inbox; recovery clears what a stopped worker left. vtex_access (the VTEX client for a store),
leases, backoff and breaker are the stages' tools. docs/architecture.md draws the layers.
"""
