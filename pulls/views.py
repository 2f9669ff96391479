"""Thin views: "Create pull request" on a session's page, GitHub's webhooks, and the branch hand-off that a
sandbox's bridge pushes to (git smart HTTP)."""

import json
import logging
import tempfile

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from pulls import git_http, opening, tasks, webhooks
from pulls.branches import session_repo
from sandboxes.models import Sandbox
from sessions.models import Session

logger = logging.getLogger(__name__)
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


def problem(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_http_methods(["GET", "POST"])
def pull_request(request: HttpRequest, session_id: int) -> JsonResponse:
    """GET: the title and description the dialog starts with, from the session as it is now. POST: open the pull
    request; the work happens in a task, and the page hears the outcome as an event (`pull_request` or
    `pull_request_failed`). Members only (anybody else gets the 404 of an unknown session)."""
    session = Session.objects.select_related("repo").filter(pk=session_id).first()
    if session is None or not session.is_member(request.user):
        return problem(404, "No such session.")
    if request.method == "GET":
        title, body = opening.prefilled(session, request.build_absolute_uri("/"))
        return JsonResponse({"title": title, "body": body, "github_problem": opening.github_problem(request.user)})
    try:
        form = json.loads(request.body or b"{}")
    except ValueError:
        return problem(400, "The request is not JSON.")
    if not isinstance(form, dict):
        return problem(400, "The request must be a JSON object.")
    title, body, draft = form.get("title", ""), form.get("body", ""), form.get("draft", False)
    if not isinstance(title, str) or not isinstance(body, str) or not isinstance(draft, bool):
        return problem(400, "title and body are strings, draft is true or false.")
    if not title.strip() or len(title) > opening.MAX_TITLE_CHARS:
        return problem(400, f"A title is 1 to {opening.MAX_TITLE_CHARS} characters.")
    if len(body) > opening.MAX_BODY_CHARS:
        return problem(400, f"The description is at most {opening.MAX_BODY_CHARS} characters.")
    tasks.open_pull_request.delay(session.pk, request.user.pk, draft, title, body)
    return JsonResponse({"state": "opening"}, status=202)


@csrf_exempt
@login_not_required
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """GitHub's deliveries: a bad or missing signature gets 401 and changes nothing."""
    if int(request.headers.get("Content-Length") or 0) > MAX_WEBHOOK_BYTES:
        return problem(413, "The payload is too large.")
    body = request.read(MAX_WEBHOOK_BYTES + 1)  # not .body: its 2.5 MB cap is for forms
    if len(body) > MAX_WEBHOOK_BYTES:
        return problem(413, "The payload is too large.")
    if not webhooks.signature_ok(body, request.headers.get("X-Hub-Signature-256", ""),
                                 settings.GITHUB_WEBHOOK_SECRET):
        return problem(401, "The X-Hub-Signature-256 signature does not match GITHUB_WEBHOOK_SECRET.")
    delivery, event = request.headers.get("X-GitHub-Delivery", ""), request.headers.get("X-GitHub-Event", "")
    if not delivery or len(delivery) > 100 or not event:
        return problem(400, "X-GitHub-Delivery and X-GitHub-Event are required.")
    try:
        payload = json.loads(body)
    except ValueError:
        return problem(400, "The payload is not JSON (set the webhook's content type to application/json).")
    if not isinstance(payload, dict):
        return problem(400, "The payload must be a JSON object.")
    outcome = webhooks.receive(delivery, event, payload)
    return JsonResponse({"outcome": outcome.message}, status=outcome.status)


@csrf_exempt
@login_not_required
def handoff(request: HttpRequest, rest: str) -> HttpResponse:
    """A sandbox's bridge pushes its session's branch here, with the bridge's token; only pushes are served."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    sandbox = Sandbox.from_token(token) if token else None
    session = Session.objects.filter(sandbox=sandbox).first() if sandbox is not None else None
    if session is None:
        return HttpResponse("Unknown or ended sandbox.\n", status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="inspect"'})
    query = request.META.get("QUERY_STRING", "")
    if not git_http.allowed(request.method or "", rest, query):
        return HttpResponse("Only pushes are served here.\n", status=403, content_type="text/plain")
    headers = {name.lower(): value for name, value in request.headers.items()}
    with tempfile.TemporaryFile() as body:
        length = git_http.spool(request, body, git_http.MAX_PUSH_BYTES) if request.method == "POST" else 0
        if length is None:
            return HttpResponse("The push is too large.\n", status=413, content_type="text/plain")
        answer = git_http.run_http_backend(session_repo(session.pk), rest, request.method or "", query, headers,
                                           body, length)
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    if request.method == "POST" and answer.status == 200:
        tasks.push_to_pull_request.delay(session.pk)
    return response
