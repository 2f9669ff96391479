"""allauth's hooks: sign-up is closed unless the person holds an invitation, SIGNUP_EMAIL_DOMAINS lets their
address in, or (signing in with GitHub) they are a member of one of SIGNUP_GITHUB_ORGS (docs/accounts.md)."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from accounts import github, signup
from accounts.models import Invitation

INVITATION_SESSION_KEY = "accounts.invitation"


def held_invitation(request) -> Invitation | None:
    """The usable invitation whose link this browser followed, if any."""
    token = request.session.get(INVITATION_SESSION_KEY) if request is not None else None
    return Invitation.find(token) if token else None


def signup_refusal(request, email: str) -> str:
    invitation = held_invitation(request)
    return signup.refusal(email, invitation.email if invitation else None, settings.SIGNUP_EMAIL_DOMAINS)


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return bool(settings.SIGNUP_EMAIL_DOMAINS) or held_invitation(request) is not None

    def save_user(self, request, user, form, commit=True):
        invitation = held_invitation(request)
        with transaction.atomic():
            user = super().save_user(request, user, form, commit)
            if invitation is not None and commit:
                if not invitation.use(user):
                    raise PermissionDenied("This invitation was used a moment ago.")
                request.session.pop(INVITATION_SESSION_KEY, None)
        return user

    def pre_login(self, request, user, **kwargs):
        vouch_for_admin_made_email(user)
        return super().pre_login(request, user, **kwargs)


def vouch_for_admin_made_email(user) -> None:
    """An account made by an admin (createsuperuser, the admin pages) has its email but no allauth record of
    it; where sign-ups must verify their email, its first login would ask for that. The admin vouched for the
    address: record it as verified. Sign-ups always have a record, so this never verifies theirs."""
    if user.email and not EmailAddress.objects.filter(user=user).exists():
        EmailAddress.objects.create(user=user, email=user.email.lower(), verified=True, primary=True)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        """The same rule as the form's (accounts/signup.py), for the addresses the provider says are verified:
        an invitation (for one of them, if it names one), or one at SIGNUP_EMAIL_DOMAINS; or, through GitHub,
        membership of one of SIGNUP_GITHUB_ORGS."""
        invitation = held_invitation(request)
        verified = [address.email for address in sociallogin.email_addresses if address.verified]
        invited = invitation.email if invitation else None
        return any(not signup.refusal(email, invited, settings.SIGNUP_EMAIL_DOMAINS) for email in verified) or (
            invitation is not None and not invitation.email) or in_allowed_github_org(sociallogin)

    def save_user(self, request, sociallogin, form=None):
        """As allauth's, and the invitation that let them in is used up (with a sign-up form, the account
        adapter's save_user has done that already)."""
        invitation = held_invitation(request)
        with transaction.atomic():
            user = super().save_user(request, sociallogin, form)
            if invitation is not None and not Invitation.objects.filter(pk=invitation.pk, used_by=user).exists():
                if not invitation.use(user):
                    raise PermissionDenied("This invitation was used a moment ago.")
                request.session.pop(INVITATION_SESSION_KEY, None)
        return user


def in_allowed_github_org(sociallogin: SocialLogin) -> bool:
    """Whether GitHub says this person is an active member of one of SIGNUP_GITHUB_ORGS (asked with their token)."""
    token = getattr(sociallogin.token, "token", "") if sociallogin.token is not None else ""
    if not settings.SIGNUP_GITHUB_ORGS or sociallogin.account.provider != "github" or not token:
        return False
    return github.active_member_of(token, settings.SIGNUP_GITHUB_ORGS) is not None
