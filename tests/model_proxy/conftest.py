import pytest

from tests.support.providers import provider_settings


@pytest.fixture
def providers(settings, model_server):
    settings.MODEL_PROVIDERS = provider_settings(model_server.url)
    settings.DEFAULT_MODEL = ""
    return model_server
