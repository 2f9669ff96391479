"""Thin views: "Create pull request" on a session's page, and GitHub's webhooks. (The branch hand-off a sandbox's
bridge pushes to is an ASGI app of its own: pulls/handoff.py.)"""

import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from pulls import opening, tasks, webhooks
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
    if not session.can_prompt(request.user):
        return problem(403, "You can watch this session but not open its pull request: ask its owner.")
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
    declared = request.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
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
