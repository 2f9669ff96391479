from django.urls import path

from dictation import views

urlpatterns = [
    path("dictation/transcribe", views.transcribe, name="dictation-transcribe"),
]
