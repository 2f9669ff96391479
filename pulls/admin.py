"""Admin: pull requests of the platform's repos, and GitHub's webhook deliveries with what to paste into GitHub."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse

from pulls.models import GitHubToken, PullRequest, WebhookDelivery


@admin.register(PullRequest)
class PullRequestAdmin(admin.ModelAdmin):
    list_display = ["__str__", "title", "state", "draft", "review_state", "author_login", "opened_through_platform",
                    "session", "updated_at"]
    list_filter = ["state", "opened_through_platform", "repo"]
    search_fields = ["title", "author_login", "head_branch"]
    readonly_fields = [field.name for field in PullRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The changelist says what to paste into a repository's webhook settings on GitHub (filter by repo to see
    one repo's deliveries)."""
    change_list_template = "admin/pulls/webhookdelivery/change_list.html"
    list_display = ["received_at", "event", "action", "github_repo", "status", "outcome", "delivery_id"]
    list_filter = ["repo", "event", "status"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}), "webhook_url": request.build_absolute_uri(reverse("github-webhook")),
                         "secret_set": bool(settings.GITHUB_WEBHOOK_SECRET)}
        return super().changelist_view(request, extra_context)


@admin.register(GitHubToken)
class GitHubTokenAdmin(admin.ModelAdmin):
    """Who has connected GitHub; the tokens themselves are never shown."""
    list_display = ["user", "login", "expires_at", "broken_at", "updated_at"]
    fields = ["user", "login", "github_id", "expires_at", "broken_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
