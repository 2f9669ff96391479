import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inspect_site.settings")

app = Celery("inspect_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
