from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Web Push: the devices a person asked to be told on, and what they are told (docs/phone.md)."""

    name = "notifications"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from notifications import receivers
        from sessions.signals import agent_error, run_finished

        run_finished.connect(receivers.on_run_finished, dispatch_uid="notifications-run-finished")
        agent_error.connect(receivers.on_agent_error, dispatch_uid="notifications-agent-error")
