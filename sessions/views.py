from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from sandboxes.models import Repo, RepoImage
from sessions import services
from sessions.forms import NewSessionForm
from sessions.models import Prompt, Session

SESSIONS_PER_PAGE = 50


def visible_sessions(user):
    """Sessions the user is a member of; staff see all of them."""
    sessions = Session.objects.all()
    if not user.is_staff:
        sessions = sessions.filter(memberships__user=user)
    return sessions


def home(request: HttpRequest) -> HttpResponse:
    first_prompt = Prompt.objects.filter(session=OuterRef("pk")).order_by("position").values("text")[:1]
    sessions = (
        visible_sessions(request.user)
        .select_related("repo", "creator")
        .annotate(first_prompt=Subquery(first_prompt))
        .order_by("-last_activity_at", "-pk")
    )
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    repos = list(Repo.objects.order_by("name"))
    images = {}
    for image in RepoImage.objects.filter(status=RepoImage.Status.READY).order_by("finished_at", "id"):
        images[image.repo_id] = image  # the newest ready image wins, as Repo.current_image() picks
    for repo in repos:
        repo.image = images.get(repo.pk)
    return render(request, "home.html", {"sessions": page.object_list, "page": page, "repos": repos})


def new_session(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = NewSessionForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                session = services.create_session(data["repo"], request.user, data["prompt"], model=data["model"])
            except ValueError as error:
                form.add_error(None, str(error))
            else:
                return redirect("session-detail", session_id=session.pk)
        status = 400
    else:
        form = NewSessionForm(initial={"repo": request.GET.get("repo")})
        status = 200
    return render(request, "sessions/new.html", {
        "form": form, "no_provider_message": form.no_provider_message, "has_repos": Repo.objects.exists(),
    }, status=status)


def session_detail(request: HttpRequest, session_id: int) -> HttpResponse:
    """Members and staff only. Anybody else gets the same 404 as for an unknown id, so that
    session ids do not tell outsiders which sessions exist."""
    session = Session.objects.select_related("repo", "sandbox").filter(pk=session_id).first()
    if session is None or not session.is_member(request.user):
        raise Http404("No such session.")
    first = session.prompts.order_by("position").values_list("text", flat=True).first()
    display_title = session.title or (first or "Untitled session")[:90]
    return render(request, "sessions/detail.html", {
        "session": session,
        "display_title": display_title,
        "sandbox_state": session.sandbox.state if session.sandbox else "",
        "max_prompt_length": services.MAX_PROMPT_CHARS,
    })
