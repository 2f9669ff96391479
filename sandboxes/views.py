"""Staff-only JSON endpoints used by the admin pages."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.db.models.functions import Length, Substr
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sandboxes.models import RepoImage


def staff_with_perm(perm: str) -> Callable:
    """Anonymous users go to the login page; signed-in users without staff status or `perm` get 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (request.user.is_active and request.user.is_staff and request.user.has_perm(perm)):
                return JsonResponse({"error": "staff only"}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@require_GET
@never_cache
@staff_with_perm("sandboxes.view_repoimage")
def image_log(request: HttpRequest, image_id: int) -> JsonResponse:
    """The build log from `offset` (in characters) on, for the image page to follow a build.

    `reset` is true when the log is shorter than the offset (a redelivered build restarts its
    log): the client then replaces what it shows instead of appending."""
    try:
        offset = int(request.GET.get("offset", "0"))
    except ValueError:
        return JsonResponse({"error": "offset must be a whole number"}, status=400)
    reset = offset < 0
    row = _log_from(image_id, max(offset, 0))
    if row is not None and offset > row["length"]:
        reset = True
        row = _log_from(image_id, 0)
    if row is None:
        return JsonResponse({"error": "no such image"}, status=404)
    return JsonResponse({
        "status": row["status"],
        "status_display": RepoImage.Status(row["status"]).label,
        "log": row["tail"],
        "offset": row["length"],
        "finished": row["status"] not in RepoImage.ACTIVE,
        "reset": reset,
    })


def _log_from(image_id: int, offset: int) -> dict | None:
    # Only the new part of the log leaves the database: builds poll this every second.
    return (
        RepoImage.objects.filter(pk=image_id)
        .annotate(length=Length("build_log"), tail=Substr("build_log", offset + 1))
        .values("status", "length", "tail")
        .first()
    )
