"""The extension's API (`/extension/api/...`): JSON in and out, a person's extension token as the credential, and
CORS for the extension's own origin alone (`chrome-extension://<EXTENSION_ID>`). Each answer to bad input is a
clear JSON error that changes nothing. See docs/extension.md."""

import json
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from extension.models import ExtensionToken, StagingSite
from proxy_core.headers import presented_credential
from sandboxes.models import Repo
from sessions import member_requests
from sessions.models import MAX_CONTEXT_CHARS, MAX_PROMPT_CHARS, Session

MAX_BODY_BYTES = MAX_PROMPT_CHARS * 4 + MAX_CONTEXT_CHARS * 4 + 4096  # the largest prompt and context, in UTF-8
MAX_URL_CHARS = 2048


def extension_origin() -> str:
    return f"chrome-extension://{settings.EXTENSION_ID}" if settings.EXTENSION_ID else ""


def with_cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Allow the extension's origin alone; any other origin gets no CORS headers, so its page cannot read the
    answer (the token would be needed anyway)."""
    origin = request.headers.get("Origin", "")
    if origin and origin == extension_origin():
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Max-Age"] = "600"
        response["Vary"] = "Origin"
    return response


def problem(request: HttpRequest, status: int, message: str) -> HttpResponse:
    return with_cors(request, JsonResponse({"error": message}, status=status))


def api(methods: tuple[str, ...]) -> Callable:
    """An API view: CORS, the preflight, the method, the origin and the token checked before it runs with
    `request.extension_user`."""
    def decorate(view: Callable) -> Callable:
        @csrf_exempt  # no cookie counts here: the token in the Authorization header is the credential
        @login_not_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            origin = request.headers.get("Origin", "")
            if origin and origin != extension_origin():
                return problem(request, 403, "Only the organisation's extension may call this API.")
            if request.method == "OPTIONS":
                return with_cors(request, HttpResponse(status=204))
            if request.method not in methods:
                return problem(request, 405, f"Use {' or '.join(methods)}.")
            credential = presented_credential([(b"authorization",
                                                request.headers.get("Authorization", "").encode("latin-1", "replace"))])
            user = ExtensionToken.holder(credential or "")
            if user is None:
                return problem(request, 401, "This extension is not connected (or its token was revoked): connect "
                                             "it again from its panel.")
            request.extension_user = user
            try:
                return with_cors(request, view(request, *args, **kwargs))
            except PermissionDenied as e:
                return problem(request, 403, str(e))
            except ValueError as e:
                return problem(request, 400, str(e))
        return wrapped
    return decorate


def json_object(request: HttpRequest) -> dict:
    if len(request.body) > MAX_BODY_BYTES:
        raise ValueError(f"The request is larger than {MAX_BODY_BYTES:,} bytes.")
    try:
        body = json.loads(request.body)
    except ValueError:
        raise ValueError("The request is not JSON.") from None
    if not isinstance(body, dict):
        raise ValueError("The request must be a JSON object.")
    return body


def session_answer(session: Session) -> dict:
    return {"id": session.pk, "status": session.status, "title": session.title, "repo": session.repo.name,
            "url": f"/sessions/{session.pk}/"}


@api(("GET",))
def repos(request: HttpRequest) -> JsonResponse:
    """The repos the person may use, and the one a staging URL (`?url=`) belongs to, to preselect."""
    url = request.GET.get("url", "")
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"A URL is at most {MAX_URL_CHARS} characters.")
    usable = list(Repo.objects.usable_by(request.extension_user).order_by("name"))
    ids = {repo.pk for repo in usable}
    match = next((site.repo_id for site in StagingSite.objects.filter(repo_id__in=ids) if url and site.matches(url)),
                 None)
    return JsonResponse({"repos": [{"id": r.pk, "name": r.name} for r in usable], "for_url": match})


@api(("POST",))
def create_session(request: HttpRequest) -> JsonResponse:
    """A new session in a repo the person may use, its first prompt with the picked context."""
    body = json_object(request)
    repo_id = body.get("repo")
    if not isinstance(repo_id, int) or isinstance(repo_id, bool):
        raise ValueError('"repo" is the id of a repo you may use.')
    repo = Repo.objects.usable_by(request.extension_user).filter(pk=repo_id).first()
    if repo is None:
        raise ValueError("No such repo, or not one you may use.")
    model = body.get("model") or ""
    if not isinstance(model, str):
        raise ValueError('"model" is "providerID/modelID", or leave it out for the default.')
    session = member_requests.create_session(repo, request.extension_user, body.get("prompt"), model=model,
                                             context=body.get("context"))
    return JsonResponse(session_answer(session), status=201)


@api(("GET",))
def session_status(request: HttpRequest, session_id: int) -> JsonResponse:
    """One of the person's own sessions: its status and title, for the panel to follow."""
    session = Session.objects.select_related("repo").filter(pk=session_id, creator=request.extension_user).first()
    if session is None or not session.is_member(request.extension_user):
        return problem(request, 404, "No such session of yours.")
    return JsonResponse(session_answer(session))
