import json
import time

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from proxy_core.headers import presented_credential
from sandboxes import provisioning, tasks
from sandboxes.models import Repo, RepoImage, Sandbox
from sessions import member_requests, rate_limits, sharing, workspace
from sessions.forms import NewSessionForm
from sessions.member_requests import sandbox_limit_reached
from sessions.models import Artifact, Membership, Prompt, Session, sees_every_session

SESSIONS_PER_PAGE = 50
SHARING_MAX_BODY = 4096
SESSION_FILTERS = {"all": "All", "mine": "Mine", "shared": "Shared with me"}


def visible_sessions(user):
    """The sessions `user` is a member of, in repos they may still use; all of them with the permission."""
    if sees_every_session(user):
        return Session.objects.all()
    return Session.objects.filter(memberships__user=user, repo__in=Repo.objects.usable_by(user))


def home(request: HttpRequest) -> HttpResponse:
    first_prompt = Prompt.objects.filter(session=OuterRef("pk")).order_by("position").values("text")[:1]
    show = request.GET.get("show") if request.GET.get("show") in SESSION_FILTERS else "all"
    sessions = visible_sessions(request.user)
    if show == "mine":
        sessions = sessions.filter(creator=request.user)
    elif show == "shared":  # others' sessions this person was invited to or joined
        sessions = sessions.filter(memberships__user=request.user).exclude(creator=request.user)
    sessions = (
        sessions
        .select_related("repo", "creator")
        .annotate(first_prompt=Subquery(first_prompt))
        .order_by("-last_activity_at", "-pk")
    )
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    repos = list(Repo.objects.usable_by(request.user).order_by("name"))
    images = {}
    for image in RepoImage.objects.filter(status=RepoImage.Status.READY).order_by("finished_at", "id"):
        images[image.repo_id] = image  # the newest ready image wins, as Repo.current_image() picks
    for repo in repos:
        repo.image = images.get(repo.pk)
    return render(request, "home.html", {"sessions": page.object_list, "page": page, "repos": repos, "show": show,
                                         "filters": SESSION_FILTERS})


def new_session(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = NewSessionForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                session = member_requests.create_session(data["repo"], request.user, data["prompt"],
                                                         model=data["model"])
            except (ValueError, PermissionDenied) as error:
                form.add_error(None, str(error))
            else:
                return redirect("session-detail", session_id=session.pk)
        status = 400
    else:
        form = NewSessionForm(initial={"repo": request.GET.get("repo")}, user=request.user)
        status = 200
    return render(request, "sessions/new.html", {
        "form": form, "no_provider_message": form.no_provider_message,
        "has_repos": Repo.objects.usable_by(request.user).exists(),
    }, status=status)


@require_POST
def warm_sandbox(request: HttpRequest) -> HttpResponse:
    """The new-session page: someone is writing a prompt for this repo, so a sandbox starts now
    and their session claims it (see docs/sessions.md)."""
    repo_id = request.POST.get("repo", "")
    if not (repo_id.isascii() and repo_id.isdigit()) or len(repo_id) > 18:  # "²" is a digit int() refuses
        return JsonResponse({"error": "Say which repo: its id."}, status=400)
    repo = Repo.objects.usable_by(request.user).filter(pk=int(repo_id)).first()
    if repo is None:  # or one this user may not use: the same answer, so ids tell outsiders nothing
        return JsonResponse({"error": "No such repo."}, status=404)
    if sandbox_limit_reached(request.user):
        return HttpResponse(status=204)  # their session would be refused: warm nothing for it
    provisioning.want_warm(repo)
    tasks.fill_warm_pool.delay(repo.pk)
    return HttpResponse(status=204)


def artifact(request: HttpRequest, session_id: int, artifact_id: int) -> FileResponse:
    """A session's artifact, for its members and staff; the same 404 as the session page otherwise."""
    found = Artifact.objects.select_related("session").filter(pk=artifact_id, session_id=session_id).first()
    if found is None or not found.session.is_member(request.user):
        raise Http404("No such artifact.")
    try:
        response = FileResponse(found.file.open("rb"), content_type=found.content_type)
    except FileNotFoundError:
        raise Http404("This artifact's file is gone.") from None
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@csrf_exempt
@login_not_required  # the sandbox presents its token instead
@require_POST
def upload_screenshot(request: HttpRequest) -> JsonResponse:
    """A sandbox's bridge sends a screenshot (image/png body) it took for the agent or a person."""
    credentials = [(b"x-api-key", request.headers.get("X-Api-Key", "")),
                   (b"authorization", request.headers.get("Authorization", ""))]
    sandbox = Sandbox.from_token(presented_credential(
        [(name, value.encode("latin-1", errors="replace")) for name, value in credentials]))
    if sandbox is None:
        return JsonResponse({"error": "A live sandbox's token is required."}, status=401)
    if not rate_limits.screenshot_allowed(sandbox.pk, time.time()):
        return JsonResponse({"error": f"At most {rate_limits.SCREENSHOTS_PER_MINUTE} screenshots a minute: "
                                      "try again in a minute."}, status=429)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 < length <= workspace.MAX_SCREENSHOT_BYTES:
        return JsonResponse({"error": f"The body must be a PNG of at most {workspace.MAX_SCREENSHOT_BYTES} bytes."},
                            status=413 if length > 0 else 400)
    if request.content_type != "image/png":
        return JsonResponse({"error": "The body must be image/png."}, status=415)
    try:
        stored = workspace.store_screenshot(
            sandbox, request.read(length), request.headers.get("X-Screenshot-Source", ""),
            request.headers.get("X-Screenshot-Taken-By", "agent"),
        )
    except ValueError as e:
        return JsonResponse({"error": str(e)}, status=400)
    except LookupError as e:
        return JsonResponse({"error": str(e)}, status=409)
    return JsonResponse({"artifact_id": stored.pk, "url": workspace.artifact_url(stored)}, status=201)


# --- sharing (sessions/sharing.py) ----------------------------------------------------------------

def json_body(request: HttpRequest) -> dict:
    """The request's JSON object, or ValueError saying what is wrong with it."""
    if len(request.body) > SHARING_MAX_BODY:
        raise ValueError("That request is too large.")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ValueError("The request is not JSON.") from None
    if not isinstance(body, dict):
        raise ValueError("The request must be a JSON object.")
    return body


def sharing_request(request: HttpRequest, session_id: int, change) -> JsonResponse:
    """Carry out `change(session, body)` for the session's owner: 404 for people not in it (as the page), 403
    for members who do not own it, 400 for bad input. Nothing changes unless it answers 200."""
    session = Session.objects.select_related("repo").filter(pk=session_id).first()
    if session is None or not session.is_member(request.user):
        return JsonResponse({"error": "No such session."}, status=404)
    try:
        return JsonResponse(change(session, json_body(request)) or {"ok": True})
    except PermissionDenied as e:
        return JsonResponse({"error": str(e)}, status=403)
    except ValueError as e:
        return JsonResponse({"error": str(e)}, status=400)


@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, session_id: int) -> JsonResponse:
    """GET: who is in the session, with their roles, and the join link (the owner's dialog). POST: invite."""
    def listing(session: Session, body: dict) -> dict:
        sharing.check_manager(session, request.user)
        token = session.join_token
        return {
            "members": [{"user_id": m.user_id, "name": m.user.get_full_name() or m.user.get_username(),
                         "username": m.user.get_username(), "role": m.role} for m in sharing.members(session)],
            "link": request.build_absolute_uri(reverse("session-join", args=[token])) if token else "",
            "link_role": session.join_role,
        }

    def invite(session: Session, body: dict) -> dict:
        sharing.invite(session, request.user, body.get("name"), body.get("role"))
        return listing(session, body)
    return sharing_request(request, session_id, listing if request.method == "GET" else invite)


@require_POST
def change_member(request: HttpRequest, session_id: int, user_id: int) -> JsonResponse:
    def change(session: Session, body: dict) -> dict | None:
        if body.get("remove") is True:
            sharing.remove(session, request.user, user_id)
            return None
        membership = sharing.change_role(session, request.user, user_id, body.get("role"))
        return {"user_id": membership.user_id, "role": membership.role}
    return sharing_request(request, session_id, change)


@require_POST
def join_link(request: HttpRequest, session_id: int) -> JsonResponse:
    def change(session: Session, body: dict) -> dict:
        if not isinstance(body.get("on"), bool):
            raise ValueError('Say whether the link is on: "on": true or false.')
        token = sharing.set_join_link(session, request.user, body["on"], body.get("role"), body.get("new") is True)
        url = request.build_absolute_uri(reverse("session-join", args=[token])) if token else ""
        return {"url": url, "role": session.join_role}
    return sharing_request(request, session_id, change)


def join_session(request: HttpRequest, token: str) -> HttpResponse:
    """A join link: GET says which session and role, POST joins it. A link that is off or revoked, or a repo
    the person may not use, is said plainly and changes nothing."""
    session = sharing.session_for_link(token)
    if session is not None and session.is_member(request.user):
        return redirect("session-detail", session_id=session.pk)
    problem = ""
    if request.method == "POST":
        try:
            joined = sharing.join(token, request.user)
        except (ValueError, PermissionDenied) as e:
            problem = str(e)
        else:
            return redirect("session-detail", session_id=joined.pk)
    elif session is None or session.status == Session.Status.ARCHIVED:
        problem = "This join link does not work any more: ask the session's owner for a new one."
    elif not session.repo.usable_by(request.user):
        problem = f"You may not use the repo {session.repo.name}: ask an admin to give you access."
    status = 200 if not problem else (404 if session is None else 403)
    return render(request, "sessions/join.html", {
        "session": session, "problem": problem,
        "role_label": Membership.Role(session.join_role).label if session is not None else "",
    }, status=status)
