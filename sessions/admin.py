"""The admin site for sessions and their event logs.

Sessions change through member_requests.py, dispatch.py and bridge_events.py (the queue, the bridges), so their
state is read-only here; an admin may add or remove members, archive sessions (an action) or delete them.
Events are an append-only log.
"""

from django.contrib import admin

from sessions.events import append_event
from sessions.models import Event, Membership, Prompt, Session


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


class PromptInline(admin.TabularInline):
    model = Prompt
    extra = 0
    can_delete = False
    fields = ["position", "author", "status", "short_text", "created_at", "started_at", "finished_at"]
    readonly_fields = fields
    ordering = ["position"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="text")
    def short_text(self, prompt: Prompt) -> str:
        return prompt.text if len(prompt.text) <= 200 else prompt.text[:200] + "…"


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "repo", "status", "creator", "agent_busy", "created_at", "last_activity_at"]
    list_filter = ["status", "repo"]
    search_fields = ["title", "branch", "creator__username", "creator__email"]
    list_select_related = ["repo", "creator"]
    fields = [
        "repo", "title", "status", "creator", "branch", "model", "sandbox", "last_snapshot",
        "opencode_session_id", "agent_busy", "last_seq", "error", "created_at", "last_activity_at",
    ]
    readonly_fields = fields
    inlines = [MembershipInline, PromptInline]
    actions = ["archive"]

    def has_add_permission(self, request) -> bool:
        return False  # sessions start from a prompt (member_requests.create_session)

    def save_model(self, request, obj: Session, form, change: bool) -> None:
        """Every field here is read-only: only the inlines (the members) change. Saving the row would write back
        what was read at the start of the request (last_seq, status, agent_busy) over what bridges wrote since."""

    @admin.action(description="Archive the selected sessions")
    def archive(self, request, queryset) -> None:
        sessions = list(queryset.exclude(status=Session.Status.ARCHIVED))
        for session in sessions:
            Session.objects.filter(pk=session.pk).update(status=Session.Status.ARCHIVED)
            append_event(session.pk, "status", {"status": Session.Status.ARCHIVED,
                                                "reason": f"archived by {request.user}", "sandbox_state": None})
        self.message_user(request, f"Archived {len(sessions)} session(s).")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["session", "seq", "kind", "bridge_event_id", "created_at"]
    list_filter = ["kind"]
    search_fields = ["=session__id", "bridge_event_id"]
    list_select_related = ["session", "session__repo"]
    readonly_fields = ["session", "seq", "kind", "data", "bridge_event_id", "created_at"]
    ordering = ["-created_at", "-seq"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
