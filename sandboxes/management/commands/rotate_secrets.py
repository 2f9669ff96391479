from django.core.management.base import BaseCommand

from sandboxes import crypto
from sandboxes.models import RepoSecret


class Command(BaseCommand):
    help = ("Re-encrypt every repo secret with the first of SECRETS_ENCRYPTION_KEY's keys. To rotate: put the new key "
            "first (new,old), run this, then drop the old key.")

    def handle(self, *args, **options) -> None:
        rotated, unreadable = 0, []
        for secret in RepoSecret.objects.select_related("repo"):
            try:
                secret.encrypted_value = crypto.rotate(secret.encrypted_value)
            except ValueError:
                unreadable.append(f"{secret.repo.name}/{secret.name}")
                continue
            secret.save(update_fields=["encrypted_value"])
            rotated += 1
        self.stdout.write(f"{rotated} secrets re-encrypted with the first key.")
        if unreadable:
            self.stderr.write("No configured key opens these (set them again in the admin): " + ", ".join(unreadable))
