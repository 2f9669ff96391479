from django.urls import path

from ide import views

urlpatterns = [
    path("sessions/<int:session_id>/", views.session_detail, name="session-detail"),
    path("sessions/<int:session_id>/open/<str:service>/", views.open_service, name="open-service"),
]
