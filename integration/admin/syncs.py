from django.contrib import admin

from integration.models import AdapterBinding, Order, OrderSync, SyncAttempt


class SyncAttemptInline(admin.TabularInline):
    model = SyncAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "duration_ms", "outcome", "error"]
    readonly_fields = fields


@admin.register(OrderSync)
class OrderSyncAdmin(admin.ModelAdmin):
    list_display = ["order", "action", "binding", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", "action", "order__account"]
    search_fields = ["=order__order_id"]
    list_select_related = ["order", "binding", "binding__account"]
    inlines = [SyncAttemptInline]
    show_full_result_count = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["order_id", "account", "vtex_status", "canceled", "start_handling_state", "created_at"]
    list_filter = ["account", "start_handling_state", "canceled"]
    search_fields = ["=order_id"]
    list_select_related = ["account"]
    show_full_result_count = False


@admin.register(AdapterBinding)
class AdapterBindingAdmin(admin.ModelAdmin):
    list_display = ["__str__", "adapter_key", "enabled", "gates_start_handling"]
    list_filter = ["enabled", "adapter_key"]
    exclude = ["secret_settings_ciphertext"]
