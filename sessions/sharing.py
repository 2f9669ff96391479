"""Who is in a session and what they may do: the owner invites people by name or shares a join link.

Roles: the owner, members who can prompt, and watchers who only see the timeline (Membership.Role). A person
joins only if they may use the session's repo (Repo.usable_by, docs/accounts.md): an invitation or a link
never gives more than the repo's access list does. Each function checks who is asking and raises
PermissionDenied or ValueError, changing nothing, when it refuses. See docs/sessions.md.
"""

import secrets
import time

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils.crypto import constant_time_compare

from sessions import rate_limits
from sessions.models import Membership, Session, sees_every_session

GIVEN_ROLES = (Membership.Role.MEMBER, Membership.Role.WATCHER)  # the owner stays the owner
JOIN_TOKEN_BYTES = 24
MAX_NAME_CHARS = 254


def manages(session: Session, user) -> bool:
    """The owner, and people who may see every session, share it."""
    if not session.is_member(user):
        return False
    return sees_every_session(user) or session.memberships.filter(user=user, role=Membership.Role.OWNER).exists()


def check_manager(session: Session, user) -> None:
    if not manages(session, user):
        raise PermissionDenied("Only the session's owner shares it.")


def clean_role(role: object) -> str:
    if role not in GIVEN_ROLES:
        raise ValueError('A role is "member" (can prompt) or "watcher" (can watch).')
    return str(role)


def find_person(name: object):
    """The active account whose username or email is `name` (case-insensitive), or None."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise ValueError("Say whom to invite: their username or email address.")
    name = name.strip()
    people = list(get_user_model().objects.filter(Q(username__iexact=name) | Q(email__iexact=name), is_active=True)[:2])
    return people[0] if len(people) == 1 else None


def invite(session: Session, by, name: object, role: object) -> Membership:
    """Add a person by username or email with `role`; someone already in gets that role (the owner stays).
    Nobody and somebody who may not use the repo get the same answer, so invitations tell nobody who has an
    account; and an owner invites at most rate_limits.INVITES_PER_MINUTE people a minute."""
    check_manager(session, by)
    role = clean_role(role)
    if not rate_limits.invite_allowed(by.pk, time.time()):
        raise ValueError(f"At most {rate_limits.INVITES_PER_MINUTE} invitations a minute: try again in a minute.")
    person = find_person(name)
    if person is None or not session.repo.usable_by(person):
        raise ValueError(f"Nobody who may use {session.repo.name} goes by that name: check the username or "
                         "email address, or ask an admin to give them access to the repo.")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(session=session, user=person, defaults={"role": role})
        if not created and membership.role != Membership.Role.OWNER and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def change_role(session: Session, by, user_id: object, role: object) -> Membership:
    check_manager(session, by)
    role = clean_role(role)
    membership = other_membership(session, user_id)
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove(session: Session, by, user_id: object) -> None:
    """Take a person out: their pages and sockets lose the session at once (sessions/access.py). A join link that
    is on is renewed, so they cannot come back by it."""
    check_manager(session, by)
    with transaction.atomic():
        other_membership(session, user_id).delete()
        if session.join_token:
            set_join_link(session, by, True, new=True)


def other_membership(session: Session, user_id: object) -> Membership:
    """A membership the owner may change: anybody's but an owner's."""
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise ValueError("Say whose membership: their id.")
    membership = session.memberships.filter(user_id=user_id).first()
    if membership is None:
        raise ValueError("That person is not in this session.")
    if membership.role == Membership.Role.OWNER:
        raise ValueError("The owner stays the owner.")
    return membership


def set_join_link(session: Session, by, on: bool, role: object = None, new: bool = False) -> str:
    """Turn the join link on or off, or (`new`) replace it so the earlier link stops working. Returns the token
    ("" when off)."""
    check_manager(session, by)
    fields: dict[str, str] = {}
    if role is not None:
        fields["join_role"] = clean_role(role)
    if not on:
        fields["join_token"] = ""
    elif new or not session.join_token:
        fields["join_token"] = secrets.token_urlsafe(JOIN_TOKEN_BYTES)
    Session.objects.filter(pk=session.pk).update(**fields)
    for name, value in fields.items():
        setattr(session, name, value)
    return session.join_token


def session_for_link(token: object) -> Session | None:
    """The session whose join link this is, while the link is on."""
    if not isinstance(token, str) or not 20 <= len(token) <= 64:
        return None
    session = Session.objects.select_related("repo").filter(join_token=token).first()
    if session is None or not constant_time_compare(session.join_token, token):
        return None
    return session


def join(token: object, user) -> Session:
    """Join by link with the link's role (someone already in keeps their role). ValueError when the link is off
    or revoked, PermissionDenied when they may not use the repo."""
    session = session_for_link(token)
    if session is None or session.status == Session.Status.ARCHIVED:
        raise ValueError("This join link does not work any more: ask the session's owner for a new one.")
    if not session.repo.usable_by(user):
        raise PermissionDenied(f"You may not use the repo {session.repo.name}: ask an admin to give you access.")
    Membership.objects.get_or_create(session=session, user=user, defaults={"role": session.join_role})
    return session


def members(session: Session) -> list[Membership]:
    return list(session.memberships.select_related("user").order_by("created_at", "pk"))
