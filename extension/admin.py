from django.contrib import admin

from extension.models import ExtensionToken, StagingSite


@admin.register(StagingSite)
class StagingSiteAdmin(admin.ModelAdmin):
    list_display = ("url_pattern", "repo", "created_at")
    list_select_related = ("repo",)


@admin.register(ExtensionToken)
class ExtensionTokenAdmin(admin.ModelAdmin):
    """Seen and revoked here; never made here (a token is made by its person, who alone sees it once)."""

    list_display = ("name", "user", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", "name", "token_hash", "created_at", "last_used_at")
    fields = ("user", "name", "created_at", "last_used_at", "revoked_at")

    def has_add_permission(self, request) -> bool:
        return False
