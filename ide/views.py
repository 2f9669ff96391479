"""The workspace page: a session's timeline and prompt box beside VS Code, the desktop and the preview."""

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from bridge.protocol import SERVICE_NAME
from ide import paths, viewer, workspace_hosts
from ide.names import SERVICE_NAMES
from pulls import opening
from sandboxes.lifecycle import State
from sessions import access, queue, sharing, workspace
from sessions.models import MAX_PROMPT_CHARS, Session


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
        # The page's scripts name services and group sandbox states as the server does.
        "service_names": SERVICE_NAMES,
        "sandbox_states": {"starting": list(State.STARTING), "alive": sorted(queue.ALIVE)},
        "pr_max_title": opening.MAX_TITLE_CHARS,
        "pr_max_body": opening.MAX_BODY_CHARS, "github_problem": opening.github_problem(request.user),
        **sharing_context(request, session),
    })


def sharing_context(request: HttpRequest, session: Session) -> dict:
    """What this person may do in the session; the owner's Share dialog reads who is in it when it opens."""
    return {
        "can_prompt": session.can_prompt(request.user), "manages": sharing.manages(session, request.user),
        "given_roles": [(role.value, role.label) for role in sharing.GIVEN_ROLES],
    }


@never_cache
def open_service(request: HttpRequest, session_id: int, service: str) -> HttpResponse:
    """Into a session's service on the session's own host (ide/workspace_hosts.py), with a fresh ticket: a
    redirect for frames and links, or `?socket=1` the socket URL as JSON (the desktop's viewer). Members and
    staff only; anybody else gets the 404 of an unknown session."""
    session = Session.objects.filter(pk=session_id).first()
    if session is None or not session.can_prompt(request.user) or not SERVICE_NAME.match(service):
        raise Http404("No such session.")
    origin = workspace_hosts.session_origin(request.scheme, request.get_host(), session.pk)
    ticket = workspace_hosts.issue_ticket(request.user, session.pk, access.login_of(request.session.session_key))
    if request.GET.get("socket") == "1":
        socket_origin = "ws" + origin.removeprefix("http")
        return JsonResponse({"url": f"{socket_origin}{paths.service_path(session.pk, service)}?"
                                    + urlencode({"ticket": ticket})})
    query = urlencode({"ticket": ticket, "next": paths.service_path(session.pk, service)})
    return HttpResponseRedirect(f"{origin}{workspace_hosts.TICKET_PATH}?{query}")
