from django.apps import AppConfig


class PullsConfig(AppConfig):
    name = "pulls"
    verbose_name = "GitHub: tokens, branches and pull requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from pulls import branches, signin, tasks
        from sessions.models import Session
        from sessions.signals import pull_request_asked

        signin.connect_signals()
        pull_request_asked.connect(tasks.on_pull_request_asked, dispatch_uid="pulls-pull-request-asked")
        post_delete.connect(branches.on_session_deleted, sender=Session, dispatch_uid="pulls-session-deleted")
