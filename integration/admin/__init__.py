from integration.admin import bindings, dashboard, events, stores, syncs  # noqa: F401  (registers the admin pages)
