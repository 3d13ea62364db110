"""Store admin: register or remove the VTEX hook, and the 'last hook' column.

The actions call VTEX (and VTEX pings the hub back) one store at a time; each store gets its
own message: success, or VTEX's error text. Messages never contain the hook secret.
"""
from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from integration.vtex_push import registration
from integration.models import IntakeMode

STALE_AFTER = timedelta(days=2)  # VTEX removes a hook after three days without notifications


def _report(modeladmin, request, result):
    modeladmin.message_user(request, result.message, messages.SUCCESS if result.ok else messages.ERROR)


@admin.action(description="Register hook in VTEX", permissions=["change"])
def register_hook(modeladmin, request, queryset):
    for account in queryset:
        _report(modeladmin, request, registration.register_hook(account))


@admin.action(description="Remove hook", permissions=["change"])
def remove_hook(modeladmin, request, queryset):
    for account in queryset:
        _report(modeladmin, request, registration.remove_hook(account))


@admin.display(description="last hook notification", ordering="last_hook_at")
def last_hook(obj):
    if obj.last_hook_at is None:
        return "—" if obj.intake_mode == IntakeMode.FEED else "never"
    when = timezone.localtime(obj.last_hook_at).strftime("%Y-%m-%d %H:%M:%S")
    if obj.intake_mode != IntakeMode.FEED and timezone.now() - obj.last_hook_at > STALE_AFTER:
        return format_html('<span style="color:#b00" title="VTEX removes a hook after three days without notifications">{} (quiet)</span>', when)
    return when
