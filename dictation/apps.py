from django.apps import AppConfig


class DictationConfig(AppConfig):
    name = "dictation"
    verbose_name = "Dictation"
