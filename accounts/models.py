"""Invitations: a link an admin hands someone so they may make an account while sign-up is closed."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

INVITATION_DAYS = 7


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet):
    def usable(self) -> "InvitationQuerySet":
        return self.filter(used_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    email = models.EmailField(blank=True, help_text="Whose it is: only this address may sign up with it. "
                                                    "Blank: whoever has the link.")
    # sha256 of the token in the link; the token itself is shown once, when the invitation is made.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                                   related_name="invitations_made", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True, editable=False)
    used_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True,
                                related_name="invitation_used", editable=False)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation for {self.email or 'whoever has the link'}"

    @classmethod
    def make(cls, email: str = "", created_by=None, days: int = INVITATION_DAYS) -> tuple["Invitation", str]:
        """A new invitation and the token for its link (kept nowhere else)."""
        invitation = cls(email=email)
        return invitation, invitation.issue(created_by, days)

    def issue(self, created_by, days: int = INVITATION_DAYS) -> str:
        """Save this new invitation, valid for `days`; the token for its link."""
        token = secrets.token_urlsafe(24)
        self.email = self.email.strip().lower()
        self.token_hash, self.created_by = hash_token(token), created_by
        self.expires_at = timezone.now() + timedelta(days=days)
        self.save()
        return token

    @classmethod
    def find(cls, token: str) -> "Invitation | None":
        """The unused, unexpired invitation with this token, or None."""
        if not isinstance(token, str) or not 10 <= len(token) <= 100:
            return None
        return cls.objects.usable().filter(token_hash=hash_token(token)).first()

    def use(self, user) -> bool:
        """Mark it used by `user`; False when someone used it first."""
        updated = Invitation.objects.usable().filter(pk=self.pk).update(used_at=timezone.now(), used_by=user)
        return bool(updated)
