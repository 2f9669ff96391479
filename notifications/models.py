from django.conf import settings
from django.db import models
from django.utils import timezone

# The Push API's sizes: endpoints are a few hundred characters; the keys are a P-256 point (65 bytes) and a
# 16-byte secret in base64url. The limits leave room and no more.
MAX_ENDPOINT_LENGTH = 1000
MAX_USER_AGENT_LENGTH = 300


class PushSubscription(models.Model):
    """One browser on one device that its person asked to be told on. The keys encrypt what is sent to it: the
    push service relays it unread. `auth` is a secret shared with that browser alone; it never leaves the server."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="push_subscriptions")
    endpoint = models.URLField(max_length=MAX_ENDPOINT_LENGTH, unique=True)
    p256dh = models.CharField(max_length=100)
    auth = models.CharField(max_length=50)
    user_agent = models.CharField(max_length=MAX_USER_AGENT_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user} on {self.device()}"

    def device(self) -> str:
        """The push service's host: enough to tell devices apart in logs and the admin, without the endpoint's
        secret path."""
        return self.endpoint.split("/")[2] if self.endpoint.count("/") >= 2 else "?"
