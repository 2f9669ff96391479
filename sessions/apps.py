from django.apps import AppConfig


class SessionsConfig(AppConfig):
    # django.contrib.sessions already owns the label "sessions".
    name = "sessions"
    label = "agent_sessions"
    verbose_name = "Agent sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sandboxes.signals import sandbox_phase_changed
        from sessions import services

        sandbox_phase_changed.connect(services.on_sandbox_phase, dispatch_uid="sessions-sandbox-phase")
