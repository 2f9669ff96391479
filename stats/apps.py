from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "stats"
    verbose_name = "Usage statistics"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sessions.signals import member_typing, run_finished
        from stats import live

        member_typing.connect(live.tell_viewers, dispatch_uid="stats-member-typing")
        run_finished.connect(live.tell_viewers, dispatch_uid="stats-run-finished")
