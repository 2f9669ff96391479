"""The pages a person uses for the extension: connect it (a token minted and handed to it) and see or revoke the
tokens they gave out."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from extension.models import ExtensionToken


@never_cache
def connect(request: HttpRequest) -> HttpResponse:
    """GET: name this browser. POST: mint a token and hand it to the extension (its id: EXTENSION_ID) through
    `chrome.runtime.sendMessage`, which only that extension receives (`externally_connectable`)."""
    if request.method == "POST":
        token, secret = ExtensionToken.mint(request.user, request.POST.get("name", ""))
        return render(request, "extension/connected.html", {  # never_cache: no-store, the secret is in it
            "token": token, "secret": secret, "extension_id": settings.EXTENSION_ID})
    return render(request, "extension/connect.html", {"extension_id": settings.EXTENSION_ID})


def tokens(request: HttpRequest) -> HttpResponse:
    """The person's extension tokens: where each was connected, when it was last used, and Revoke."""
    return render(request, "extension/tokens.html", {"tokens": request.user.extension_tokens.all()})


@require_POST
def revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the person's own tokens (anybody else's is not found): its next API call gets 401."""
    if not request.user.extension_tokens.filter(pk=token_id, revoked_at=None).update(revoked_at=timezone.now()):
        raise Http404("No such token of yours.")
    return redirect("extension-tokens")
