"""What people ask of a session: start it, queue a prompt, cancel one, stop the agent, say they are typing.
Views and the session socket call these; each queues what it must and lets the dispatch engine decide."""

import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from sandboxes.lifecycle import State
from sandboxes.models import Repo
from sessions import queue, signals
from sessions.dispatch import dispatch, step
from sessions.events import append_event
from sessions.models import Membership, Prompt, Session, clean_prompt

MODEL_RE = re.compile(r"^[\w.-]+/\S{1,150}$")
TYPING_RECORD_SECONDS = 5.0  # someone's typing is written at most this often
TYPING_PAUSE_SECONDS = 30.0  # typing again after this long is "started typing" (signals.member_typing)


def create_session(repo: Repo, user, prompt_text: str, model: str = "", context: dict | None = None) -> Session:
    """A new session owned by `user`, its first prompt queued and on its way."""
    text, context = clean_prompt(prompt_text, context)
    if not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Sign in to start a session.")
    if not repo.usable_by(user):
        raise PermissionDenied(f"You may not use the repo {repo.name}: ask an admin to give you access.")
    if model and not MODEL_RE.match(model):
        raise ValueError('Write the model as "providerID/modelID", e.g. "anthropic/claude-sonnet-4".')
    with transaction.atomic():
        lock_owner(user.pk)
        check_sandbox_limit(user, user)
        session = Session.objects.create(repo=repo, creator=user, model=model)
        session.add_member(user, Membership.Role.OWNER)
        queue_prompt(session, user, text, context)
        dispatch(session)  # in the same transaction: the prompt's command leaves at its one commit
    return session


def sandbox_limit_reached(owner: AbstractBaseUser | None) -> bool:
    """Whether `owner` has MAX_SANDBOXES_PER_USER sessions of their own holding a sandbox or about to (0: no
    limit). Sandboxes count against the session's creator, whoever's prompt starts them."""
    limit = settings.MAX_SANDBOXES_PER_USER
    if not limit or owner is None:
        return False
    holding = Session.objects.filter(creator_id=owner.pk).filter(
        Q(sandbox__state__in=State.LIVE) | Q(sandbox__isnull=True, status=Session.Status.STARTING))
    return holding.count() >= limit


def lock_owner(owner_id: int | None) -> None:
    """Lock the sandbox owner's row until the caller's transaction ends, so two requests at once cannot both take
    the last place. Taken before anything about their sessions is read."""
    if settings.MAX_SANDBOXES_PER_USER and owner_id is not None:
        get_user_model().objects.select_for_update().filter(pk=owner_id).exists()


def check_sandbox_limit(owner: AbstractBaseUser | None, requester: AbstractBaseUser) -> None:
    """Refuse a new sandbox for `owner` past the limit (inside the caller's transaction, after lock_owner)."""
    if not settings.MAX_SANDBOXES_PER_USER or owner is None:
        return
    if sandbox_limit_reached(owner):
        whose = "You already have" if owner.pk == requester.pk else "This session's owner already has"
        raise PermissionDenied(
            f"{whose} {settings.MAX_SANDBOXES_PER_USER} sessions with a sandbox running, the most one person may "
            "have at once. Stop one, or wait until one is idle and lets its sandbox go.")


def restores_a_sandbox(session: Session) -> bool:
    """Whether a prompt now would start a sandbox for `session` (it holds none and is not starting one)."""
    if session.status in (Session.Status.STARTING, Session.Status.ARCHIVED):
        return False
    sandbox = session.sandbox
    return sandbox is None or sandbox.state not in State.LIVE


def submit_prompt(session: Session, user, text: str, context: dict | None = None) -> Prompt:
    """Queue a prompt; it is sent when the agent is idle (at once if it is idle now)."""
    check_prompter(session, user)
    text, context = clean_prompt(text, context)
    with transaction.atomic():
        lock_owner(session.creator_id)  # first: a follow-up sent at the same moment may be starting its sandbox
        current = Session.objects.select_related("sandbox", "creator").get(pk=session.pk)
        if restores_a_sandbox(current):
            check_sandbox_limit(current.creator, user)
        prompt = queue_prompt(session, user, text, context)
        dispatch(session)  # in the same transaction: a warm prompt's command leaves at its one commit
    prompt.refresh_from_db()
    return prompt


def cancel_prompt(session: Session, user, prompt_id: int) -> Prompt:
    """Cancel a queued prompt. A running, finished or unknown prompt raises ValueError."""
    check_prompter(session, user)
    step(session, queue.CANCEL, prompt_id=prompt_id, user=user)
    return Prompt.objects.get(pk=prompt_id)


def stop(session: Session, user) -> None:
    """Abort the running prompt; the queued ones stay queued. Nothing running raises ValueError."""
    check_prompter(session, user)
    step(session, queue.STOP, user=user)


def note_typing(session: Session, user) -> bool:
    """A member is writing a prompt: note it ("humans prompting now"), and a session without a live sandbox
    starts one now (restoring its last snapshot), so the follow-up finds it up. True when this started one."""
    check_prompter(session, user)
    record_typing(session, user)
    current = Session.objects.select_related("sandbox").get(pk=session.pk)
    if not restores_a_sandbox(current):
        return False  # the common case, without a lock: the sandbox is up or starting
    with transaction.atomic():
        lock_owner(session.creator_id)
        current = Session.objects.select_related("sandbox", "creator").get(pk=session.pk)
        if restores_a_sandbox(current) and sandbox_limit_reached(current.creator):
            return False  # the prompt would be refused: warm nothing for it
        action, _ = step(session, queue.TYPING, user=user)
    return isinstance(action, queue.StartSandbox)


def record_typing(session: Session, user) -> None:
    """Keep when the person last typed here (at most every TYPING_RECORD_SECONDS: the page says it every 2 s);
    tell the apps above when they start after a pause."""
    now = timezone.now()
    mine = Membership.objects.filter(session=session, user=user)
    last = mine.values_list("last_typed_at", flat=True).first()
    if last is not None and now - last < timedelta(seconds=TYPING_RECORD_SECONDS):
        return
    mine.update(last_typed_at=now)
    if last is None or now - last >= timedelta(seconds=TYPING_PAUSE_SECONDS):
        transaction.on_commit(lambda: signals.member_typing.send(Session, session=session, user=user))


def check_member(session: Session, user) -> None:
    if not session.is_member(user):
        raise PermissionDenied("You are not a member of this session.")


def check_prompter(session: Session, user) -> None:
    """Members who can prompt (and the owner) act in a session; watchers only watch."""
    check_member(session, user)
    if not session.can_prompt(user):
        raise PermissionDenied("You can watch this session but not prompt in it: ask its owner to let you prompt.")


def queue_prompt(session: Session, user, text: str, context: dict) -> Prompt:
    """Append a prompt to the queue (inside the caller's transaction)."""
    status = Session.objects.select_for_update(of=("self",)).values_list("status", flat=True).get(pk=session.pk)
    if status == Session.Status.ARCHIVED:
        raise ValueError("This session is archived.")
    last = Prompt.objects.filter(session=session).aggregate(last=Max("position"))["last"] or 0
    prompt = Prompt.objects.create(session=session, author=user, text=text, context=context, position=last + 1)
    append_event(session.pk, "prompt_queued", {
        "prompt_id": prompt.pk, "position": prompt.position, "text": text, "context": context,
        "author": prompt.author_name(), "author_id": user.pk,
    })
    return prompt
