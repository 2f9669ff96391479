from django.apps import AppConfig


class ExtensionConfig(AppConfig):
    name = "extension"
    verbose_name = "Chrome extension"
