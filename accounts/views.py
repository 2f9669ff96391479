from allauth.account.adapter import get_adapter
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.adapter import INVITATION_SESSION_KEY
from accounts.models import Invitation


@login_not_required
def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation's link: remembered in this browser's session, then on to the sign-up page. An invitation
    that is unknown, used or expired says so and opens nothing."""
    invitation = Invitation.find(token)
    if invitation is None:
        return render(request, "accounts/invitation_unusable.html", status=404)
    request.session[INVITATION_SESSION_KEY] = token
    if invitation.email:
        # Whoever has the link was sent it at that address (or given it by the admin who typed it).
        get_adapter(request).stash_verified_email(request, invitation.email)
    return redirect("account_signup")
