from django.apps import AppConfig


class ModelProxyConfig(AppConfig):
    name = "model_proxy"
    verbose_name = "Model proxy"
