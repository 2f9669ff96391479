from django.apps import AppConfig


class SandboxesConfig(AppConfig):
    name = "sandboxes"
    verbose_name = "Repos, images and sandboxes"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sandboxes import signals  # noqa: F401
