from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sandboxes.models import Repo


def home(request: HttpRequest) -> HttpResponse:
    repos = Repo.objects.order_by("name")
    return render(request, "home.html", {"repos": repos})
