from integration.admin import events, stores, syncs  # noqa: F401  (registers the admin pages)
