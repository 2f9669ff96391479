"""The installable web app: its manifest, its service worker and the page it shows offline (docs/phone.md).
All three are for anyone: a browser fetches the manifest without cookies, and they hold nothing private."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

THEME_COLOUR = "#1d2330"  # the top bar's (static/css/site.css, --ink)
BACKGROUND_COLOUR = "#f7f8fa"
OFFLINE_PATH = "/offline"


@login_not_required
@require_GET
def manifest(request: HttpRequest) -> JsonResponse:
    icons = [{"src": static(f"pwa/icon-{size}.png"), "sizes": f"{size}x{size}", "type": "image/png",
              "purpose": purpose} for size in (192, 512) for purpose in ("any", "maskable")]
    return JsonResponse({
        "name": "Inspect", "short_name": "Inspect", "description": "Prompts become pull requests, in the background.",
        "id": "/", "start_url": "/", "scope": "/", "display": "standalone",
        "theme_color": THEME_COLOUR, "background_color": BACKGROUND_COLOUR, "icons": icons,
    }, content_type="application/manifest+json")


@login_not_required
@require_GET
@cache_control(no_cache=True)
def service_worker(request: HttpRequest) -> HttpResponse:
    """At the root, so its scope is the whole platform. no-cache: a new version reaches browsers at once."""
    context = {"static_prefix": static(""), "offline_path": OFFLINE_PATH,
               "precache": [OFFLINE_PATH, static("css/site.css"), static("css/phone.css"), static("pwa/icon-192.png")],
               "icon": static("pwa/icon-192.png")}
    return render(request, "pwa/sw.js", context, content_type="text/javascript; charset=utf-8")


@login_not_required
@require_GET
def offline(request: HttpRequest) -> HttpResponse:
    """Shown by the service worker for any page while offline; the same for everyone (it is cached)."""
    return render(request, "pwa/offline.html")
