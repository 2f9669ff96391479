import hashlib
import json
import re
import secrets
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from sandboxes import crypto
from sandboxes.github_names import github_repo_from_clone_url, valid_github_repo
from sandboxes.lifecycle import State, check_transition

CLONE_URL_RE = re.compile(r"^(https?|ssh|git|file)://\S+$|^[\w.-]+@[\w.-]+:\S+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_clone_url(value: str) -> None:
    if not CLONE_URL_RE.match(value):
        raise ValidationError("Enter a git URL: https://, ssh://, git://, file:// or user@host:path.")
    # A credential in the URL would reach every sandbox (its git remote), the build log and the admin pages.
    parts = urlsplit(value) if "://" in value else None
    if parts is not None and (parts.password is not None or (parts.scheme in ("http", "https") and parts.username)):
        raise ValidationError("Leave credentials out of the clone URL: anyone who can see the repo, and every "
                              "sandbox, would read them.")


def validate_github_repo(value: str) -> None:
    if value and not valid_github_repo(value):
        raise ValidationError('Enter the repository as "owner/name", as GitHub shows it.')


def validate_env(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Environment variables must be a JSON object, e.g. {"NODE_ENV": "test"}.')
    for name, val in value.items():
        validate_env_name(name)
        if not isinstance(val, str):
            raise ValidationError(f"The value of {name} must be a string.")


def validate_env_name(value: str) -> None:
    if not ENV_NAME_RE.match(value):
        raise ValidationError(f"{value!r} is not a valid environment variable name.")


def port_list(text: str) -> list[int]:
    return [int(part) for part in text.replace(",", " ").split()]


def validate_ports(value: str) -> None:
    try:
        ports = port_list(value)
    except ValueError:
        raise ValidationError("Ports are numbers separated by commas, e.g. 3000, 5173.") from None
    if any(not 0 < port < 65536 for port in ports):
        raise ValidationError("A port is between 1 and 65535.")


def command_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


class RepoQuerySet(models.QuerySet):
    def usable_by(self, user) -> "RepoQuerySet":
        """The repos `user` may start sessions in (see Repo.usable_by)."""
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        listed = models.Q(allowed_users=user) | models.Q(allowed_groups__in=user.groups.all())
        return self.filter(models.Q(access=Repo.Access.EVERYONE) | listed).distinct()


class Repo(models.Model):
    class Access(models.TextChoices):
        EVERYONE = "everyone", "everyone who can sign in"
        LISTED = "listed", "only the users and groups listed"

    class EnvironmentSource(models.TextChoices):
        COMMANDS = "commands", "setup commands"
        DEVCONTAINER = "devcontainer", ".devcontainer/devcontainer.json"

    name = models.SlugField(max_length=100, unique=True)
    clone_url = models.CharField(max_length=500, validators=[validate_clone_url])
    default_branch = models.CharField(max_length=200, default="main")
    github_repo = models.CharField(
        "GitHub repository", max_length=201, blank=True, validators=[validate_github_repo],
        help_text='"owner/name" on GITHUB_URL, where pull requests are opened; read from the clone URL when blank. '
                  "Blank when the clone URL is not on GitHub.")
    environment_source = models.CharField(
        max_length=20, choices=EnvironmentSource.choices, default=EnvironmentSource.COMMANDS
    )
    setup_commands = models.TextField(
        blank=True, help_text="One shell command per line, run in the repo when its image is built."
    )
    start_commands = models.TextField(
        blank=True, help_text="One per line, run in each sandbox when it starts (dev servers)."
    )
    preview_ports = models.CharField(
        max_length=200, blank=True, validators=[validate_ports],
        help_text="The ports the start commands serve, comma-separated (e.g. 3000, 5173): the workspace's previews.",
    )
    env_vars = models.JSONField(default=dict, blank=True, validators=[validate_env])
    warm_pool_size = models.PositiveSmallIntegerField(default=0)
    # Someone is writing a new session's first prompt: the pool keeps one sandbox warm until then.
    warm_wanted_until = models.DateTimeField(null=True, blank=True, editable=False)
    rebuild_interval_minutes = models.PositiveIntegerField(default=30)
    # Who may start sessions in the repo (and stay in its sessions). Sign-up is closed by default, so everyone
    # who can sign in was let in on purpose; a repo for fewer people lists them.
    access = models.CharField(max_length=10, choices=Access.choices, default=Access.EVERYONE)
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="usable_repos",
                                           help_text="With access for the listed only: who may use the repo.")
    allowed_groups = models.ManyToManyField("auth.Group", blank=True, related_name="usable_repos",
                                            help_text="With access for the listed only: whose groups may use it.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = RepoQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """The GitHub repository follows the clone URL unless an admin set one of their own."""
        before = Repo.objects.filter(pk=self.pk).values_list("clone_url", "github_repo").first() if self.pk else None
        if before is not None and before[0] != self.clone_url and self.github_repo == before[1] \
                and before[1] == github_repo_from_clone_url(before[0], settings.GITHUB_URL):
            self.github_repo = ""  # it was the old URL's: derive it again
        if not self.github_repo:
            self.github_repo = github_repo_from_clone_url(self.clone_url, settings.GITHUB_URL)
        super().save(*args, **kwargs)

    def usable_by(self, user) -> bool:
        """Whether `user` may start sessions here: any active user where the repo is for everyone, else the
        listed users and the members of the listed groups (and superusers)."""
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        if self.access == Repo.Access.EVERYONE or user.is_superuser:
            return True
        return (self.allowed_users.filter(pk=user.pk).exists()
                or self.allowed_groups.filter(pk__in=user.groups.values("pk")).exists())

    @property
    def rebuild_interval(self) -> timedelta:
        return timedelta(minutes=self.rebuild_interval_minutes)

    def current_image(self) -> "RepoImage | None":
        """The image in service: the newest ready one. A failed build never replaces it."""
        return self.images.filter(status=RepoImage.Status.READY).order_by("-finished_at", "-id").first()

    def secrets_dict(self, for_repo_commands: bool = False) -> dict[str, str]:
        """The secrets (decrypted: ValueError if a key is missing); only those for the repo's own commands if
        asked."""
        secrets = self.secrets.filter(for_repo_commands=True) if for_repo_commands else self.secrets.all()
        return {s.name: s.value() for s in secrets}

    def setup_fingerprint(self) -> str:
        """Changes whenever what goes into an image (besides the commit) changes."""
        data = {
            "source": self.environment_source,
            "setup": command_lines(self.setup_commands),
            "start": command_lines(self.start_commands),
            "ports": port_list(self.preview_ports),
            "env": self.env_vars,
            "secrets": sorted((s.name, s.updated_at.isoformat()) for s in self.secrets.all()),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def request_build(self, reason: str = "requested") -> tuple["RepoImage", bool]:
        """Queue a build unless one is already queued or building. Returns (image, created)."""
        try:
            with transaction.atomic():
                image = RepoImage.objects.create(repo=self, reason=reason)
            return image, True
        except IntegrityError:
            active = self.images.filter(status__in=RepoImage.ACTIVE).first()
            if active is None:  # it finished between our insert and this read
                return self.request_build(reason)
            return active, False


class RepoSecret(models.Model):
    """A secret for the repo's image build, encrypted at rest; never shown again once saved."""

    repo = models.ForeignKey(Repo, models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100, validators=[validate_env_name])
    encrypted_value = models.TextField(editable=False)
    # The setup commands an admin writes always get it. The repo's own commands (devcontainer.json's, written by
    # whoever can push to the branch) only when this says so.
    for_repo_commands = models.BooleanField(
        default=False, verbose_name="for the repo's own commands",
        help_text="Also give it to the commands in the repo's devcontainer.json, which anyone who can push to the "
                  "branch can change.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repo", "name"], name="unique_secret_name_per_repo")]

    def __str__(self) -> str:
        return self.name

    def set_value(self, plaintext: str) -> None:
        self.encrypted_value = crypto.encrypt(plaintext)
        self.updated_at = timezone.now()

    def value(self) -> str:
        return crypto.decrypt(self.encrypted_value)


class RepoImage(models.Model):
    """The repo at one commit with its setup done. Immutable once built."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"
        COLLECTED = "collected", "collected (files deleted)"

    ACTIVE = (Status.QUEUED, Status.BUILDING)

    repo = models.ForeignKey(Repo, models.CASCADE, related_name="images")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(max_length=200, blank=True)
    backend = models.CharField(max_length=20, blank=True)
    backend_ref = models.CharField(max_length=300, blank=True)
    commit_sha = models.CharField(max_length=64, blank=True)
    setup_fingerprint = models.CharField(max_length=64, blank=True)
    # What the image was built with, resolved (repo settings + devcontainer.json).
    env = models.JSONField(default=dict, blank=True)
    start_commands = models.JSONField(default=list, blank=True)
    forward_ports = models.JSONField(default=list, blank=True)
    build_log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["repo"],
                condition=models.Q(status__in=["queued", "building"]),
                name="one_active_build_per_repo",
            )
        ]

    def __str__(self) -> str:
        return f"{self.repo.name}@{self.commit_sha[:10] or '?'} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class Sandbox(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repo = models.ForeignKey(Repo, models.CASCADE, related_name="sandboxes")
    image = models.ForeignKey(RepoImage, models.CASCADE, related_name="sandboxes")
    restored_from = models.ForeignKey(
        "Snapshot", models.SET_NULL, null=True, blank=True, related_name="restored_sandboxes"
    )
    state = models.CharField(max_length=20, choices=State.CHOICES, default=State.PROVISIONING)
    pooled = models.BooleanField(default=False, help_text="Waiting in the warm pool, not yet claimed.")
    backend = models.CharField(max_length=20)
    backend_ref = models.CharField(max_length=300, blank=True)
    synced_commit = models.CharField(max_length=64, blank=True)
    # sha256 of the token the sandbox's bridge presents (its socket, screenshot uploads) and of the one its
    # OpenCode presents to the model proxy; the tokens themselves are never stored. Two tokens, so that what
    # the agent's tools can read (OpenCode's config) opens nothing but model calls.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    model_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    end_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When its latest snapshot began: one still "snapshotting" long after (its worker died) is recovered.
    snapshot_started_at = models.DateTimeField(null=True, blank=True)
    # While a worker starts it or saves its work: when that worker last said it is still on it. A start or a
    # snapshot whose worker went silent (killed) is taken to have died with it (lifecycle.reap_decision).
    worker_pulse_at = models.DateTimeField(null=True, blank=True)
    # How many times the reaper started a new bridge in it (lifecycle.MAX_BRIDGE_RESTARTS at most).
    bridge_restarts = models.PositiveSmallIntegerField(default=0)
    # What the bridge last reported of each workspace service ("ide", "desktop", "preview-3000"):
    # {"state": "starting" | "ready" | "failed" | "stopped", "port": int | None, "reason": str}.
    services = models.JSONField(default=dict, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["repo", "pooled", "state"])]

    def __str__(self) -> str:
        return f"sandbox {str(self.id)[:8]} ({self.state})"

    def move_to(self, target: str, **fields) -> bool:
        """Compare-and-set the state; False when another process moved it first."""
        check_transition(self.state, target)
        updated = Sandbox.objects.filter(pk=self.pk, state=self.state).update(state=target, **fields)
        if updated:
            self.state = target
            for name, value in fields.items():
                setattr(self, name, value)
        return bool(updated)

    def issue_token(self) -> str:
        """A new token for this sandbox (handed to its bridge once); replaces any earlier one."""
        token = secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        Sandbox.objects.filter(pk=self.pk).update(token_hash=self.token_hash)
        return token

    def service_secret(self) -> str:
        """The secret VS Code and the desktop of this sandbox ask of every request (bridge.protocol
        SERVICE_SECRET_COOKIES), derived from SECRET_KEY and the backend's reference, so it is never stored
        and the same for the sandbox's whole life. Empty before the backend has named the sandbox."""
        if not self.backend_ref:
            return ""
        return salted_hmac("sandboxes.service-secret", self.backend_ref, algorithm="sha256").hexdigest()

    def issue_model_token(self) -> str:
        """A new token for this sandbox's model calls (handed to its OpenCode once); replaces any earlier one."""
        token = secrets.token_urlsafe(32)
        self.model_token_hash = hash_token(token)
        Sandbox.objects.filter(pk=self.pk).update(model_token_hash=self.model_token_hash)
        return token

    @classmethod
    def from_token(cls, token: str) -> "Sandbox | None":
        """The live sandbox whose bridge this token belongs to, or None."""
        return cls.live_with_token(token).first()

    @classmethod
    def live_id_for_model_token(cls, token: str) -> "uuid.UUID | None":
        """The id of the live sandbox whose model calls this token is for: what the model proxy needs on every
        call. A bridge's token is no model token, nor the other way round."""
        if not token:
            return None
        return (cls.objects.filter(model_token_hash=hash_token(token), state__in=State.LIVE)
                .values_list("pk", flat=True).first())

    @classmethod
    def live_with_token(cls, token: str) -> models.QuerySet:
        """The live sandbox this token belongs to, as a query (empty for no token)."""
        if not token:
            return cls.objects.none()
        return cls.objects.filter(token_hash=hash_token(token), state__in=State.LIVE)

    def record_heartbeat(self, at=None) -> None:
        self.last_heartbeat_at = at or timezone.now()
        Sandbox.objects.filter(pk=self.pk).update(last_heartbeat_at=self.last_heartbeat_at)

    @classmethod
    def claim_from_pool(cls, repo: Repo) -> "Sandbox | None":
        """Take a pooled sandbox on the current image, or None: a ready one, else the one nearest to
        ready (warmed while its session's prompt was written, it is further along than a new one)."""
        image = repo.current_image()
        if image is None:
            return None
        candidates = cls.objects.filter(repo=repo, image=image, pooled=True, state__in=State.STARTING_OR_READY)
        ranked = sorted(candidates.values_list("pk", "state", "created_at")[:20],
                        key=lambda c: (State.STARTING_OR_READY.index(c[1]), c[2]))
        for pk, state, _ in ranked[:5]:
            if cls.claim(pk, state):
                return cls.objects.get(pk=pk)
        return None

    @classmethod
    def claim(cls, pk, state: str, **fields) -> bool:
        """Take the pooled sandbox `pk` if it is still pooled and in `state`. Safe under concurrency:
        the conditional UPDATE lets exactly one claimer win each sandbox."""
        now = timezone.now()
        claimed = {"pooled": False, "claimed_at": now, "last_heartbeat_at": now, **fields}
        if state == State.READY:
            claimed["state"] = State.RUNNING
        return bool(cls.objects.filter(pk=pk, pooled=True, state=state).update(**claimed))


class Snapshot(models.Model):
    """A sandbox's changes on top of its image: restoring costs what changed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repo = models.ForeignKey(Repo, models.CASCADE, related_name="snapshots")
    image = models.ForeignKey(RepoImage, models.CASCADE, related_name="snapshots")
    sandbox = models.ForeignKey(Sandbox, models.SET_NULL, null=True, blank=True, related_name="snapshots")
    backend = models.CharField(max_length=20)
    backend_ref = models.CharField(max_length=300)
    size_bytes = models.BigIntegerField(default=0)
    duration_seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"snapshot {str(self.id)[:8]}"
