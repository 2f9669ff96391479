"""The admin site for repos, their images, sandboxes and snapshots.

Repos and their secrets are edited here; images, sandboxes and snapshots are records of what
the workers did, so they are read-only. Builds and terminations are queued as Celery tasks
once the transaction that asked for them commits.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from sandboxes import lifecycle, tasks
from sandboxes.forms import RepoForm, RepoSecretForm
from sandboxes.lifecycle import State
from sandboxes.models import Repo, RepoImage, RepoSecret, Sandbox, Snapshot

POOL_STATES = (State.PROVISIONING, State.SYNCING, State.READY)
HISTORY_LENGTH = 20


def short_sha(sha: str) -> str:
    return sha[:7] if sha else "—"


def image_link(image: RepoImage | None, text: str = "") -> str:
    if image is None:
        return "—"
    url = reverse("admin:sandboxes_repoimage_change", args=[image.pk])
    return format_html('<a href="{}">{}</a>', url, text or f"#{image.pk}")


def queue_rebuild(request: HttpRequest, repo: Repo) -> RepoImage:
    """Queue a build of `repo` unless one is queued or building; tell the user which happened."""
    image, created = repo.request_build(f"rebuild requested by {request.user.get_username()}")
    if created:
        transaction.on_commit(lambda: tasks.build_image.delay(image.pk))
        messages.success(request, f"{repo.name}: build #{image.pk} queued.")
    else:
        messages.warning(request, f"{repo.name}: a build is already running (#{image.pk}, {image.status}).")
    return image


class RepoSecretInline(admin.TabularInline):
    model = RepoSecret
    form = RepoSecretForm
    fields = ["name", "value", "for_repo_commands", "last_set"]
    readonly_fields = ["last_set"]
    extra = 1
    verbose_name = "secret"
    verbose_name_plural = "secrets (passed to image builds as environment variables; never shown again)"

    @admin.display(description="value last set")
    def last_set(self, secret: RepoSecret) -> str:
        if secret.pk is None:
            return "—"  # a new row's default "now" would mislead
        return date_format(timezone.localtime(secret.updated_at), "DATETIME_FORMAT")


@admin.register(Repo)
class RepoAdmin(admin.ModelAdmin):
    form = RepoForm
    inlines = [RepoSecretInline]
    list_display = ["name", "clone_url", "default_branch", "current_image", "warm_pool", "last_build"]
    search_fields = ["name", "clone_url"]
    actions = ["rebuild_now"]
    fieldsets = [
        (None, {"fields": ["name", "clone_url", "default_branch", "github_repo", "github_webhook"]}),
        ("Environment", {"fields": ["environment_source", "setup_commands", "start_commands", "preview_ports",
                                    "env_vars"]}),
        ("Rebuilds and warm pool", {"fields": ["rebuild_interval_minutes", "warm_pool_size"]}),
        ("Who may use it", {"fields": ["access", "allowed_users", "allowed_groups"],
                            "description": "Everyone who can sign in, or only the users and groups listed. "
                                           "Someone who loses access loses the repo's sessions at once."}),
    ]
    filter_horizontal = ["allowed_users", "allowed_groups"]
    readonly_fields = ["github_webhook"]

    @admin.display(description="GitHub webhook")
    def github_webhook(self, repo: Repo) -> str:
        # The deliveries page (the pulls app's admin, named here rather than imported) says what to paste.
        if repo.pk is None:
            return "—"
        url = reverse("admin:pulls_webhookdelivery_changelist") + f"?repo__id__exact={repo.pk}"
        return format_html('<a href="{}">Its URL, secret and last deliveries</a>', url)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Repo]:
        ready = RepoImage.objects.filter(repo=OuterRef("pk"), status=RepoImage.Status.READY).order_by(
            "-finished_at", "-id"
        )
        latest = RepoImage.objects.filter(repo=OuterRef("pk")).order_by("-queued_at", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                current_sha=Subquery(ready.values("commit_sha")[:1]),
                current_built_at=Subquery(ready.values("finished_at")[:1]),
                last_status=Subquery(latest.values("status")[:1]),
                ready_pooled=Count(
                    "sandboxes", filter=Q(sandboxes__pooled=True, sandboxes__state=State.READY), distinct=True
                ),
            )
        )

    @admin.display(description="current image")
    def current_image(self, repo: Repo) -> str:
        if repo.current_built_at is None:
            return "—"
        return f"{short_sha(repo.current_sha)}, {timesince(repo.current_built_at)} old"

    @admin.display(description="warm pool (ready / size)")
    def warm_pool(self, repo: Repo) -> str:
        return f"{repo.ready_pooled} / {repo.warm_pool_size}"

    @admin.display(description="last build")
    def last_build(self, repo: Repo) -> str:
        return repo.last_status or "never built"

    @admin.action(description="Rebuild now", permissions=["change"])
    def rebuild_now(self, request: HttpRequest, queryset: QuerySet[Repo]) -> HttpResponse | None:
        images = [queue_rebuild(request, repo) for repo in queryset]
        if len(images) == 1:
            return HttpResponseRedirect(reverse("admin:sandboxes_repoimage_change", args=[images[0].pk]))
        return None

    def get_urls(self) -> list:
        rebuild = self.admin_site.admin_view(self.rebuild_view)
        return [path("<path:object_id>/rebuild/", rebuild, name="sandboxes_repo_rebuild"), *super().get_urls()]

    @method_decorator(require_POST)
    def rebuild_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        repo = get_object_or_404(Repo, pk=object_id)
        if not self.has_change_permission(request, repo):
            raise PermissionDenied
        image = queue_rebuild(request, repo)
        return HttpResponseRedirect(reverse("admin:sandboxes_repoimage_change", args=[image.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        repo = self.get_object(request, unquote(object_id))
        if repo is not None:
            extra_context = {**(extra_context or {}), **self.status_context(request, repo)}
        return super().change_view(request, object_id, form_url, extra_context)

    def status_context(self, request: HttpRequest, repo: Repo) -> dict:
        pool = list(
            repo.sandboxes.filter(pooled=True, state__in=POOL_STATES).select_related("image").order_by("created_at")
        )
        pool_ready = sum(1 for s in pool if s.state == State.READY)
        return {
            "can_rebuild": self.has_change_permission(request, repo),
            "current_image": repo.current_image(),
            "active_build": repo.images.filter(status__in=RepoImage.ACTIVE).first(),
            "images": repo.images.all()[:HISTORY_LENGTH],
            "image_count": repo.images.count(),
            "pool": pool,
            "pool_ready": pool_ready,
            "pool_starting": len(pool) - pool_ready,
            # A new session's prompt being written, or a follow-up that may come: the pool keeps one.
            "warm_wanted_until": (
                repo.warm_wanted_until if lifecycle.warm_wanted(repo.warm_wanted_until, timezone.now()) else None
            ),
        }

    def get_deleted_objects(self, objs, request: HttpRequest) -> tuple:
        # Deleting a repo deletes its images, sandboxes and snapshots (signals free their files).
        # Their admins refuse deleting them one by one; that must not block deleting the repo.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        cascaded = {str(model._meta.verbose_name) for model in (RepoImage, Sandbox, Snapshot)}
        return deleted, counts, perms_needed - cascaded, protected


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the workers: viewable, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(RepoImage)
class RepoImageAdmin(ReadOnlyAdmin):
    list_display = ["number", "repo", "status", "commit", "reason", "size", "duration", "queued_at", "finished_at"]
    list_display_links = ["number"]
    list_filter = ["repo", "status"]
    list_select_related = ["repo"]
    fieldsets = [
        (None, {"fields": ["repo", "status", "reason", "commit_sha", "error"]}),
        ("Timing and size", {"fields": ["queued_at", "started_at", "finished_at", "duration", "size"]}),
        ("Built with", {"fields": ["setup_fingerprint", "env", "start_commands", "forward_ports"],
                        "classes": ["collapse"]}),
        ("Backend", {"fields": ["backend", "backend_ref"], "classes": ["collapse"]}),
    ]
    readonly_fields = [f for fs in fieldsets for f in fs[1]["fields"]]

    def has_delete_permission(self, request: HttpRequest, obj: RepoImage | None = None) -> bool:
        # Only failed builds can go by hand: nothing runs on them and they hold no files.
        if obj is None or obj.status != RepoImage.Status.FAILED:
            return False
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    @admin.display(description="image", ordering="pk")
    def number(self, image: RepoImage) -> str:
        return f"#{image.pk}"

    @admin.display(description="commit", ordering="commit_sha")
    def commit(self, image: RepoImage) -> str:
        return short_sha(image.commit_sha)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, image: RepoImage) -> str:
        return "—" if image.size_bytes is None else filesizeformat(image.size_bytes)

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, image: RepoImage) -> str:
        return "—" if image.duration_seconds is None else f"{image.duration_seconds:.0f} s"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        image = self.get_object(request, unquote(object_id))
        log = image.build_log if image is not None else ""
        extra_context = {**(extra_context or {}), "log_offset": len(log)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Sandbox)
class SandboxAdmin(ReadOnlyAdmin):
    list_display = [
        "short_id", "repo", "state", "pooled", "image_link", "created_at", "ready_at", "last_heartbeat_at",
        "end_reason",
    ]
    list_filter = ["state", "repo", "pooled"]
    list_select_related = ["repo", "image"]
    actions = ["terminate"]
    readonly_fields = [
        "id", "repo", "image", "restored_from", "state", "pooled", "backend", "backend_ref", "synced_commit",
        "end_reason", "created_at", "ready_at", "claimed_at", "last_heartbeat_at", "terminated_at",
    ]

    @admin.display(description="id")
    def short_id(self, sandbox: Sandbox) -> str:
        return str(sandbox.pk)[:8]

    @admin.display(description="image", ordering="image")
    def image_link(self, sandbox: Sandbox) -> str:
        return image_link(sandbox.image, f"#{sandbox.image_id} {short_sha(sandbox.image.commit_sha)}")

    def has_terminate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sandboxes.change_sandbox")

    @admin.action(description="Terminate", permissions=["terminate"])
    def terminate(self, request: HttpRequest, queryset: QuerySet[Sandbox]) -> None:
        reason = f"terminated by {request.user.get_username()}"
        ids = [str(pk) for pk in queryset.exclude(state=State.TERMINATED).values_list("pk", flat=True)]
        for sandbox_id in ids:
            transaction.on_commit(lambda sandbox_id=sandbox_id: tasks.terminate_sandbox.delay(sandbox_id, reason))
        messages.success(request, f"Termination queued for {len(ids)} sandbox(es).")


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "repo", "image", "sandbox", "size", "duration", "created_at"]
    list_filter = ["repo"]
    list_select_related = ["repo", "image", "sandbox"]
    readonly_fields = [
        "id", "repo", "image", "sandbox", "backend", "backend_ref", "size_bytes", "duration_seconds", "created_at",
    ]

    @admin.display(description="id")
    def short_id(self, snapshot: Snapshot) -> str:
        return str(snapshot.pk)[:8]

    @admin.display(description="size", ordering="size_bytes")
    def size(self, snapshot: Snapshot) -> str:
        return filesizeformat(snapshot.size_bytes)

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, snapshot: Snapshot) -> str:
        return f"{snapshot.duration_seconds:.1f} s"
