from django.urls import path

from sessions import views

urlpatterns = [
    path("", views.home, name="home"),
    path("sessions/new", views.new_session, name="session-new"),
    path("sessions/warm", views.warm_sandbox, name="session-warm"),
    path("sessions/<int:session_id>/artifacts/<int:artifact_id>/", views.artifact, name="session-artifact"),
    path("sessions/api/screenshots/", views.upload_screenshot, name="screenshot-upload"),
    path("sessions/<int:session_id>/members", views.members, name="session-members"),
    path("sessions/<int:session_id>/members/<int:user_id>", views.change_member, name="session-member"),
    path("sessions/<int:session_id>/join-link", views.join_link, name="session-join-link"),
    path("join/<str:token>", views.join_session, name="session-join"),
]
