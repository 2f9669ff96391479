from django.apps import AppConfig


class PullsConfig(AppConfig):
    name = "pulls"
    verbose_name = "GitHub: tokens, branches and pull requests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pulls import signin

        signin.connect_signals()
