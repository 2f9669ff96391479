from django.contrib import admin

from notifications.models import PushSubscription


@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    """Who is told on which devices; the keys are not shown (the auth secret is the browser's and this server's)."""

    list_display = ("user", "device", "user_agent", "created_at")
    fields = ("user", "device", "user_agent", "created_at")
    readonly_fields = fields
    search_fields = ("user__username",)

    def has_add_permission(self, request) -> bool:
        return False
