from django.urls import path

from sandboxes import views

app_name = "sandboxes"

urlpatterns = [
    path("images/<int:image_id>/log", views.image_log, name="image-log"),
]
