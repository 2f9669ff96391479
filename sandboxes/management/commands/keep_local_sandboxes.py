import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from sandboxes.shutdown import stop_local_sandboxes

# honcho kills what has not ended 5 s after it asked: what is not saved by then is left for the next start.
SHUTDOWN_SECONDS = 4.0


class Command(BaseCommand):
    help = ("Run beside `make run` (the Procfile's `sandboxes`): when it stops, save this machine's sandboxes' work "
            "and stop them, unless KEEP_SANDBOXES_ON_STOP=1.")

    def handle(self, *args, **options) -> None:
        stopping = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stopping.set())
        self.stdout.write("keeping this machine's sandboxes: they are saved and stopped with make run", ending="\n")
        self.stdout.flush()
        stopping.wait()
        started = time.monotonic()
        if settings.SANDBOX_BACKEND != "local" or settings.KEEP_SANDBOXES_ON_STOP:
            self.stdout.write("leaving the sandboxes running: the next start adopts or reaps them")
            return
        for line in stop_local_sandboxes(started + SHUTDOWN_SECONDS):
            self.stdout.write(line)
