"""The django-q2 schedules the hub needs, created idempotently at migrate time."""

SCHEDULES = [
    # (name, func, minutes)
    ("vtexhub: feed cycle", "integration.tasks.run_feed_cycles", 1),
    ("vtexhub: dispatch due syncs", "integration.tasks.dispatch_all_due", 1),
    ("vtexhub: poll adapters for updates to VTEX", "integration.tasks.poll_adapter_updates", 1),
    ("vtexhub: re-register hooks", "integration.tasks.reregister_vtex_push", 1440),
    ("vtexhub: reconcile with VTEX's order list", "integration.tasks.reconcile", "RECONCILE_EVERY_MINUTES"),
    ("vtexhub: check alerts", "integration.tasks.check_alerts", 5),
    ("vtexhub: prune old rows", "integration.tasks.prune", 1440),
]


def ensure_schedules(**kwargs):
    # Called after migrate; apps.py imports this module before django_q's models are loaded.
    from django.conf import settings
    from django_q.models import Schedule

    for name, func, minutes in SCHEDULES:
        if isinstance(minutes, str):
            minutes = getattr(settings, minutes)
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
