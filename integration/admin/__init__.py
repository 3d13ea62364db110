from integration.admin import bindings, dashboard, events, stores, syncs, updates  # noqa: F401  (registers the admin pages)
