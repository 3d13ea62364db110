from django.contrib import admin
from django.utils.html import format_html

from integration.admin.forms import AccountForm
from integration.admin.hook_actions import last_hook, register_hook, remove_hook
from integration.models import Account, AdapterBinding, FeedConfiguration, RoutingRule


class FeedConfigurationInline(admin.StackedInline):
    model = FeedConfiguration
    can_delete = False
    extra = 0
    fields = ["filter_type", "statuses", "expression", "disable_single_fire", "visibility_timeout", "retention", "last_pushed_at"]
    readonly_fields = ["last_pushed_at"]


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 0


class AdapterBindingInline(admin.TabularInline):
    model = AdapterBinding
    extra = 0
    fields = ["adapter_key", "name", "enabled", "gates_start_handling", "actions"]
    show_change_link = True


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountForm
    list_display = ["name", "account_name", "active", "paused", "intake_mode", "last_cycle", last_hook]
    actions = [register_hook, remove_hook]
    list_filter = ["active", "paused", "intake_mode"]
    search_fields = ["name", "account_name", "app_key"]
    inlines = [FeedConfigurationInline, RoutingRuleInline, AdapterBindingInline]
    readonly_fields = ["last_cycle_at", "last_cycle_ok", "last_cycle_error", "last_cycle_summary", "last_hook_at"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        # The token is write-only: a user who may not change stores gets no field for it at all
        # (a read-only field would render the decrypted value).
        if not self.has_change_permission(request, obj):
            fields = [f for f in fields if f != "app_token"]
        return fields

    @admin.display(description="last feed cycle")
    def last_cycle(self, obj):
        if obj.last_cycle_at is None:
            return "never"
        if obj.last_cycle_ok:
            s = obj.last_cycle_summary or {}
            return format_html("{} ok: {} new, {} committed", obj.last_cycle_at.strftime("%Y-%m-%d %H:%M:%S"), s.get("new", 0), s.get("committed", 0))
        return format_html('<span style="color:#b00">{} error: {}</span>', obj.last_cycle_at.strftime("%Y-%m-%d %H:%M:%S"), obj.last_cycle_error[:200])
