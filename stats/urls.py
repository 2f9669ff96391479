from django.urls import path

from stats import views

urlpatterns = [
    path("stats", views.stats_page, name="stats"),
]
