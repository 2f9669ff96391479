from django.urls import path

from sessions import views

urlpatterns = [
    path("", views.home, name="home"),
]
