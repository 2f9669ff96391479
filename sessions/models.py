"""Sessions, who is in them, their prompts (the queue) and their event log. See docs/sessions.md."""

import json
import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from bridge.protocol import ModelSpec
from sandboxes.models import Repo, Sandbox, Snapshot
from sessions import picks, queue

MAX_PROMPT_CHARS = 100_000
MAX_CONTEXT_CHARS = 100_000


SEE_EVERY_SESSION = "agent_sessions.see_every_session"


def sees_every_session(user) -> bool:
    return bool(user.is_active and user.has_perm(SEE_EVERY_SESSION))


class Session(models.Model):
    class Status(models.TextChoices):
        STARTING = "starting"
        IDLE = "idle"
        RUNNING = "running"
        FAILED = "failed"
        ARCHIVED = "archived"

    repo = models.ForeignKey(Repo, models.CASCADE, related_name="sessions")
    title = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STARTING)
    # Kept when its creator's account is deleted: other members still work in it.
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="created_sessions"
    )
    branch = models.CharField(max_length=200, blank=True, help_text="The working branch; inspect/<id> by default.")
    model = models.CharField(max_length=200, blank=True, help_text='"providerID/modelID"; blank: the default.')
    sandbox = models.ForeignKey(Sandbox, models.SET_NULL, null=True, blank=True, related_name="sessions")
    last_snapshot = models.ForeignKey(Snapshot, models.SET_NULL, null=True, blank=True, related_name="sessions")
    opencode_session_id = models.CharField(max_length=200, blank=True)
    agent_busy = models.BooleanField(default=False)
    last_seq = models.PositiveBigIntegerField(default=0, help_text="The last event sequence number given out.")
    # Tokens the providers reported for this session's model calls (model_proxy/budget.py).
    model_tokens_used = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    # The join link (sessions/sharing.py): on while a token is set; a new token revokes the old link.
    join_token = models.CharField(max_length=64, blank=True, db_index=True)
    join_role = models.CharField(max_length=10, default="watcher", help_text="What people who join by link may do.")

    class Meta:
        ordering = ["-last_activity_at"]
        # The stats page counts sessions per day over a window, for every repo or some (docs/stats.md).
        indexes = [models.Index(fields=["created_at"], name="session_created_at"),
                   models.Index(fields=["repo", "created_at"], name="session_repo_created_at")]
        # Given to people (or groups) in the admin; superusers have it. Being staff is not enough.
        permissions = [("see_every_session", "Can see and take part in every session")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title or self.repo.name}"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        if not self.branch:
            self.branch = f"inspect/{self.pk}"
            Session.objects.filter(pk=self.pk).update(branch=self.branch)

    def is_member(self, user) -> bool:
        """Whether `user` may see and take part in this session: an active user who is one of its members and
        may still use its repo, or who has the permission to see every session."""
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        if sees_every_session(user):
            return True
        return self.memberships.filter(user=user).exists() and self.repo.usable_by(user)

    def role_of(self, user) -> str | None:
        """What `user` may do here: "owner", "member" (can prompt), "watcher", or None when they are not in.
        People with the permission to see every session may prompt in any (they count as members)."""
        if not self.is_member(user):
            return None
        role = self.memberships.filter(user=user).values_list("role", flat=True).first()
        if role is None or (role == Membership.Role.WATCHER and sees_every_session(user)):
            return Membership.Role.MEMBER
        return role

    def can_prompt(self, user) -> bool:
        """Whether `user` may act in this session: prompt, cancel, stop, use its workspace, open its PR."""
        return self.role_of(user) in Membership.PROMPTING

    def add_member(self, user, role: str = "member") -> "Membership":
        membership, _ = Membership.objects.get_or_create(session=self, user=user, defaults={"role": role})
        return membership

    def facts(self) -> queue.Facts:
        """What the queue's decisions need to know about this session (see queue.py)."""
        open_prompts = list(
            self.prompts.filter(status__in=Prompt.OPEN).order_by("position")
            .values_list("pk", "status", "started_at", "sent_at")
        )
        running = next(((pk, started, sent) for pk, status, started, sent in open_prompts if status == "running"),
                       None)
        unconfirmed = running is not None and running[1] is None and running[2] is not None
        return queue.Facts(
            agent_busy=self.agent_busy,
            sandbox_state=self.sandbox.state if self.sandbox_id else None,
            snapshot_id=str(self.last_snapshot_id) if self.last_snapshot_id else None,
            queued=tuple(pk for pk, status, _, _ in open_prompts if status == "queued"),
            running=running[0] if running else None,
            running_confirmed=bool(running and running[1]),
            running_unconfirmed_seconds=(timezone.now() - running[2]).total_seconds() if unconfirmed else 0.0,
            failed=self.status == Session.Status.FAILED,
        )

    def model_spec(self) -> ModelSpec | None:
        """The model as the bridge wants it: {"providerID", "modelID"}, or None for the default."""
        if "/" not in self.model:
            return None
        provider, model = self.model.split("/", 1)
        return {"providerID": provider, "modelID": model}


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "owner"
        MEMBER = "member", "can prompt"
        WATCHER = "watcher", "can watch"

    PROMPTING = (Role.OWNER, Role.MEMBER)

    session = models.ForeignKey(Session, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="session_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)
    # When they last wrote in the prompt box (at most every few seconds): "humans prompting now".
    last_typed_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.session_id} ({self.role})"


class Prompt(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        CANCELLED = "cancelled"
        FAILED = "failed"

    OPEN = (Status.QUEUED, Status.RUNNING)

    session = models.ForeignKey(Session, models.CASCADE, related_name="prompts")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="prompts")
    text = models.TextField()
    context = models.JSONField(default=dict, blank=True, help_text="Structured context, e.g. a picked UI element.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    position = models.PositiveIntegerField(help_text="Order in the session, from 1.")
    stop_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Sent to the agent (status running) at dispatch, last at sent_at; started_at is set when the bridge confirms.
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    commit_sha = models.CharField(max_length=64, blank=True, help_text="The commit its run made, if any.")
    # The git addresses its run's commit names (the author's first): what GitHub may receive from this session.
    commit_people = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["session", "position"]
        constraints = [models.UniqueConstraint(fields=["session", "position"], name="one_prompt_per_position")]
        # The few open prompts among all of them: "humans prompting now" (stats/live.py) asks every few seconds.
        indexes = [models.Index(fields=["status"], condition=models.Q(status__in=["queued", "running"]),
                                name="prompt_open")]

    def __str__(self) -> str:
        return f"prompt {self.position} of session {self.session_id} ({self.status})"

    def author_name(self) -> str:
        if self.author is None:
            return "a former member"
        return self.author.get_full_name() or self.author.get_username()

    def text_for_agent(self) -> str:
        """The text the agent gets: the prompt, then its context: picked elements as lines (sessions/picks.py),
        anything else as JSON."""
        if not self.context:
            return self.text
        return picks.text_for_agent(self.text, self.context)


class Event(models.Model):
    """One entry of a session's log. Stored before anybody is told about it."""

    session = models.ForeignKey(Session, models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=50)
    data = models.JSONField(default=dict, blank=True)
    bridge_event_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            # Its index is also the (session, seq) index that resumes read.
            models.UniqueConstraint(fields=["session", "seq"], name="one_event_per_seq"),
            models.UniqueConstraint(
                fields=["session", "bridge_event_id"],
                condition=~models.Q(bridge_event_id=""),
                name="one_event_per_bridge_event_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.kind}"

    def as_message(self) -> dict:
        return {"seq": self.seq, "kind": self.kind, "data": self.data, "created_at": self.created_at.isoformat()}


def clean_prompt(text, context) -> tuple[str, dict]:
    """The prompt's text and context, or ValueError saying what is wrong with them."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("A prompt needs some text.")
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"A prompt is at most {MAX_PROMPT_CHARS:,} characters; this one has {len(text):,}.")
    if "\x00" in text:
        raise ValueError("A prompt cannot contain NUL characters.")
    context = {} if context is None else context
    if not isinstance(context, dict):
        raise ValueError("The context must be a JSON object.")
    encoded = json.dumps(context)
    if len(encoded) > MAX_CONTEXT_CHARS:
        raise ValueError(f"The context is at most {MAX_CONTEXT_CHARS:,} characters of JSON.")
    if "\\u0000" in encoded:
        raise ValueError("The context cannot contain NUL characters.")
    return text.strip(), context


def artifact_path(artifact: "Artifact", filename: str) -> str:
    return f"artifacts/{artifact.session_id}/{uuid.uuid4().hex}{Path(filename).suffix}"


class Artifact(models.Model):
    """A file a session produced for people to see: a screenshot of the desktop or of a page.
    Served only to the session's members (sessions.views.artifact), never from a public URL."""

    class Kind(models.TextChoices):
        SCREENSHOT = "screenshot"

    session = models.ForeignKey(Session, models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SCREENSHOT)
    file = models.FileField(upload_to=artifact_path)
    content_type = models.CharField(max_length=100, default="image/png")
    size_bytes = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=500, blank=True, help_text='"desktop" or the page\'s URL.')
    taken_by = models.CharField(max_length=150, blank=True, help_text='"agent" or who asked for it.')
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "created_at"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} of session {self.session_id}"
