"""The workspace page: a session's timeline and prompt box beside VS Code, the desktop and the preview."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from ide import paths, viewer
from ide.names import SERVICE_NAMES
from sandboxes.lifecycle import State
from sessions import queue, workspace
from sessions.models import MAX_PROMPT_CHARS, Session


def ide_origin(request: HttpRequest) -> str:
    """Where the page loads VS Code's frame from ("": its own origin). The header is set by the front proxy
    only, which replaces any a browser sends; without a front there is none."""
    port = request.headers.get("X-Workspace-Port", "")
    if not port:
        return ""
    return settings.WORKSPACE_ORIGIN or paths.workspace_origin(request.scheme, request.get_host(), port)


def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    """Members and staff only. Anybody else gets the same 404 as for an unknown id, so that
    session ids do not tell outsiders which sessions exist."""
    session = Session.objects.select_related("repo", "sandbox").filter(pk=session_id).first()
    if session is None or not session.is_member(request.user):
        raise Http404("No such session.")
    first = session.prompts.order_by("position").values_list("text", flat=True).first()
    live = session.sandbox is not None and session.sandbox.state in State.LIVE
    services_now = workspace.services_now(session, session.sandbox) if live else {}
    display_title = session.title or (first or "Untitled session")[:90]
    return render(request, "ide/workspace.html", {
        "session": session,
        "display_title": display_title,
        "sandbox_state": session.sandbox.state if session.sandbox else "",
        "max_prompt_length": MAX_PROMPT_CHARS,
        "viewer_modules": list(viewer.modules()),
        "services": services_now,
        "ide_ready": (services_now.get("ide") or {}).get("state") == "ready",
        "ide_origin": ide_origin(request),
        # The page's scripts name services and group sandbox states as the server does.
        "service_names": SERVICE_NAMES,
        "sandbox_states": {"starting": list(State.STARTING), "alive": sorted(queue.ALIVE)},
    })


