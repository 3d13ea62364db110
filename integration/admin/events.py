from django.contrib import admin

from integration.admin.display import truncated
from integration.models import FeedEvent


@admin.register(FeedEvent)
class FeedEventAdmin(admin.ModelAdmin):
    list_display = ["order_id", "state", "store", "source", "received_at", "committed_at", "duplicates", "short_error"]
    list_filter = ["account", "state", "source", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["=order_id", "event_id"]
    list_select_related = ["account"]
    show_full_result_count = False

    @admin.display(description="store", ordering="account__name")
    def store(self, obj):
        return truncated(obj.account.name, "12em")

    @admin.display(description="error")
    def short_error(self, obj):
        return truncated(obj.error, "20em") if obj.error else ""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
