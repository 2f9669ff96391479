from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from stats import figures, live


def stats_page(request: HttpRequest) -> HttpResponse:
    """The platform's usage, for every signed-in person, over the repos they may use (docs/stats.md)."""
    try:
        repo_id = figures.parse_repo_id(request.GET.get("repo"))
    except ValueError as error:
        return HttpResponse(str(error), status=400, content_type="text/plain")
    scope = figures.scope_for(request.user, repo_id)
    if scope is None:  # unknown, or not theirs: the same answer, so ids tell outsiders nothing
        raise Http404("No such repo.")
    found = figures.figures(scope)
    return render(request, "stats/stats.html", {
        "figures": found,
        "repos": figures.visible_repos(request.user).order_by("name").values("pk", "name"),
        "repo_id": repo_id,
        "prompting_now": live.prompting_now(scope.repo_ids),
        "median_text": duration_text(found["median_seconds_to_pull_request"]),
        "merged_rate_text": percent_text(found["merged_rate"]),
        "merged_share_text": percent_text(found["merged_share"]),
        "chart_data": {key: found[key] for key in ("days", "sessions_per_day", "opened_per_day", "merged_per_day",
                                                   "weeks", "opened_per_week", "merged_per_week")},
    })


def duration_text(seconds: float | None) -> str:
    """A median lead time as people say it: "3 min", "2 h 5 min", "1 d 4 h"."""
    if seconds is None:
        return "–"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min" if minutes else f"{round(seconds)} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def percent_text(fraction: float | None) -> str:
    return "–" if fraction is None else f"{fraction * 100:.0f}%"
