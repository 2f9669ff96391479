from django.apps import AppConfig


class PullsConfig(AppConfig):
    name = "pulls"
    verbose_name = "GitHub: tokens, branches and pull requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pulls import signin, tasks
        from sessions.signals import pull_request_asked

        signin.connect_signals()
        pull_request_asked.connect(tasks.on_pull_request_asked, dispatch_uid="pulls-pull-request-asked")
