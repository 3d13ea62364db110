"""The Operators group keeps view access to every model, including ones added after the
migration that created the group, and the change permissions its day-to-day actions need (run
after every migrate, so an existing installation gets a new one at its next `migrate`).

Change permission on: syncs (all, failed, held) and orders (retry, resolve, abandon, start
handling anyway); updates to VTEX (all, failed: retry, resolve by hand, abandon, the operator's
invoice form); ERP API tokens (revoke only: a token's page is read-only, and issuing one needs the
add permission, which operators do not have, like every other credential)."""

OPERATORS = "Operators"
VIEW_APPS = ("integration", "django_q")
CHANGE_MODELS = ("ordersync", "failedsync", "heldsync", "order", "vtexupdate", "failedupdate", "erptoken")


def ensure_operators_group():
    # Called after migrate; the module is imported by the app config, before auth's models load.
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=OPERATORS)
    view = Permission.objects.filter(content_type__app_label__in=VIEW_APPS, codename__startswith="view_")
    change = Permission.objects.filter(content_type__app_label="integration", codename__in=[f"change_{m}" for m in CHANGE_MODELS])
    group.permissions.add(*view, *change)
