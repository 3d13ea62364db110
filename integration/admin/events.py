from django.contrib import admin

from integration.models import FeedEvent


@admin.register(FeedEvent)
class FeedEventAdmin(admin.ModelAdmin):
    list_display = ["order_id", "state", "account", "source", "received_at", "committed_at", "duplicates", "error"]
    list_filter = ["account", "state", "source", ("received_at", admin.DateFieldListFilter)]
    search_fields = ["=order_id", "event_id"]
    list_select_related = ["account"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
