"""Telling open sockets that someone's access changed, so a person who lost a session loses it at once.

Membership is checked when a socket opens; afterwards these changes reach every socket of the person (on any
web process, through the channel layer) within a second, and each socket checks again and closes if they are
out: a membership removed, the account deactivated or changed (its groups, permissions, password), a group's
permissions changed or the group deleted, a repo's access list changed, or a sign-out (which closes the sockets
opened under that sign-in, platform and workspace alike, and ends the workspace cookies it gave).
"""

import logging

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_out
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.utils.crypto import constant_time_compare, salted_hmac

from sandboxes.models import Repo
from sessions.models import Membership, Session

log = logging.getLogger(__name__)
ACCESS_CHANGED = "access.changed"  # the message type; consumers handle it as access_changed
LOGIN_ENDED_SECONDS = 13 * 3600  # longer than any workspace cookie lives (ide/workspace_hosts.py)


def user_group(user_id: int) -> str:
    return f"access-user-{user_id}"


def repo_group(repo_id: int) -> str:
    return f"access-repo-{repo_id}"


def login_of(session_key: str | None) -> str:
    """A name for one sign-in (a Django session), kept in workspace cookies and sockets: not the key itself."""
    if not session_key:
        return ""
    return salted_hmac("sessions.access.login", session_key, algorithm="sha256").hexdigest()[:32]


def login_ended(login: str) -> bool:
    """Whether that sign-in was signed out (its workspace cookies then count for nothing). Synchronous."""
    return bool(login) and cache.get(f"access:login-ended:{login}") is not None


def still_in(session_id: int, user_id: int | None, login: str = "", auth_hash: str = "", acting: bool = False) -> bool:
    """Whether the person (fetched afresh: their account may have changed) may still be in the session, under
    that sign-in, with the password they had when the socket opened (`auth_hash`: get_session_auth_hash then;
    a changed password ends their sign-ins, and so their sockets). `acting`: and may still act in it (prompt,
    use its workspace), not only watch. Synchronous."""
    if user_id is None or login_ended(login):
        return False
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or (auth_hash and not constant_time_compare(user.get_session_auth_hash(), auth_hash)):
        return False
    session = Session.objects.select_related("repo").filter(pk=session_id).first()
    if session is None:
        return False
    return session.can_prompt(user) if acting else session.is_member(user)


def groups_for(user_id: int, repo_id: int | None) -> list[str]:
    """The groups a socket of this person in a session of that repo listens on."""
    return [user_group(user_id)] + ([repo_group(repo_id)] if repo_id is not None else [])


def concerns(message: dict, login: str) -> bool:
    """Whether a change message may end a socket opened under `login`: a sign-out only ends its own."""
    ended = message.get("login_ended") or ""
    return not ended or ended == login


@database_sync_to_async
def repo_of(session_id: int) -> int | None:
    return Session.objects.filter(pk=session_id).values_list("repo_id", flat=True).first()


still_in_async = database_sync_to_async(still_in)


async def until_out(session_id: int, user_id: int, login: str, auth_hash: str = "", acting: bool = False) -> None:
    """Returns once the person is no longer in the session (`acting`: or may only watch it now): for a socket
    that is no Channels consumer (the workspace proxy's relay), which then closes itself. Listens on a channel
    of its own."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    groups = groups_for(user_id, await repo_of(session_id))
    for group in groups:
        await layer.group_add(group, channel)
    try:
        while True:
            message = await layer.receive(channel)
            if message.get("type") == ACCESS_CHANGED and concerns(message, login) \
                    and not await still_in_async(session_id, user_id, login, auth_hash, acting):
                return
    finally:
        for group in groups:
            await layer.group_discard(group, channel)


# --- telling -------------------------------------------------------------------------------------

def tell(group: str, login_ended: str = "") -> None:
    """After the current transaction commits (a change rolled back changes nobody's access)."""
    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(group, {"type": ACCESS_CHANGED,
                                                                  "login_ended": login_ended})
        except Exception:
            log.exception("could not tell %s that access changed", group)

    transaction.on_commit(send)


def on_membership_deleted(sender, instance: Membership, **kwargs) -> None:
    tell(user_group(instance.user_id))


def on_membership_saved(sender, instance: Membership, created: bool, update_fields=None, **kwargs) -> None:
    """A role changed (a prompter made a watcher loses the workspace; the page learns what it may do)."""
    if created or (update_fields is not None and set(update_fields) <= {"last_typed_at"}):
        return
    tell(user_group(instance.user_id))


def on_user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return  # a new account has no sockets; a sign-in changes nobody's access
    tell(user_group(instance.pk))


def on_user_relations_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """A user's groups or permissions, changed from either side."""
    if not action.startswith("post_"):
        return
    if isinstance(instance, get_user_model()):
        tell(user_group(instance.pk))
    elif pk_set:  # from the group's or the permission's side: pk_set are users
        for user_id in pk_set:
            tell(user_group(user_id))
    elif action == "post_clear":  # group.user_set.clear(): whoever was in it is unknown now; rare
        log.info("a group's members were cleared: their open sockets are checked at their next change")


def on_repo_changed(sender, instance, **kwargs) -> None:
    if kwargs.get("action", "post_").startswith("pre_"):
        return
    repo_id = instance.pk if isinstance(instance, Repo) else None
    if repo_id is not None:
        tell(repo_group(repo_id))
    elif kwargs.get("reverse") and kwargs.get("pk_set"):  # from the user's or group's side: pk_set are repos
        for pk in kwargs["pk_set"]:
            tell(repo_group(pk))


def on_group_permissions_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """A group's permissions (see every session), changed from either side: every member of the group(s)."""
    if not action.startswith("post_"):
        return
    groups = [instance] if isinstance(instance, Group) else list(Group.objects.filter(pk__in=pk_set or ()))
    for group in groups:
        for user_id in group.user_set.values_list("pk", flat=True):
            tell(user_group(user_id))


def on_group_deleted(sender, instance, **kwargs) -> None:
    """Before a group goes (its members, a repo's access list, a permission with it): its members."""
    for user_id in instance.user_set.values_list("pk", flat=True):
        tell(user_group(user_id))


def on_signed_out(sender, request, user, **kwargs) -> None:
    login = login_of(getattr(getattr(request, "session", None), "session_key", None))
    if user is None or not login:
        return
    cache.set(f"access:login-ended:{login}", 1, LOGIN_ENDED_SECONDS)
    tell(user_group(user.pk), login_ended=login)


def connect_signals() -> None:
    User = get_user_model()
    post_delete.connect(on_membership_deleted, sender=Membership, dispatch_uid="access-membership")
    post_save.connect(on_membership_saved, sender=Membership, dispatch_uid="access-membership-saved")
    post_save.connect(on_user_saved, sender=User, dispatch_uid="access-user")
    for through in (User.groups.through, User.user_permissions.through):
        m2m_changed.connect(on_user_relations_changed, sender=through, dispatch_uid=f"access-{through.__name__}")
    post_save.connect(on_repo_changed, sender=Repo, dispatch_uid="access-repo")
    for through in (Repo.allowed_users.through, Repo.allowed_groups.through):
        m2m_changed.connect(on_repo_changed, sender=through, dispatch_uid=f"access-{through.__name__}")
    user_logged_out.connect(on_signed_out, dispatch_uid="access-signed-out")
    m2m_changed.connect(on_group_permissions_changed, sender=Group.permissions.through,
                        dispatch_uid="access-group-permissions")
    pre_delete.connect(on_group_deleted, sender=Group, dispatch_uid="access-group-deleted")
