"""allauth's signals, for the token of every GitHub sign-in, sign-up and connection (pulls/tokens.py keeps it)."""

from allauth.account.signals import user_signed_up
from allauth.socialaccount.signals import social_account_added, social_account_removed, social_account_updated

from pulls import tokens
from pulls.models import GitHubToken


def on_social_login(sender, request=None, sociallogin=None, **kwargs) -> None:
    if sociallogin is not None:
        tokens.store_from_sociallogin(sociallogin)


def on_social_account_removed(sender, request=None, socialaccount=None, **kwargs) -> None:
    if socialaccount is not None and socialaccount.provider == "github":
        GitHubToken.objects.filter(user=socialaccount.user).delete()


def connect_signals() -> None:
    social_account_added.connect(on_social_login, dispatch_uid="pulls-github-added")
    social_account_updated.connect(on_social_login, dispatch_uid="pulls-github-updated")
    user_signed_up.connect(on_social_login, dispatch_uid="pulls-github-signed-up")
    social_account_removed.connect(on_social_account_removed, dispatch_uid="pulls-github-removed")
