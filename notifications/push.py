"""Sending one notification to one subscription through its push service (RFC 8030, 8291, 8292)."""

import logging
import threading
from contextlib import contextmanager

import requests
from django.conf import settings
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from notifications.models import PushSubscription
from notifications.wire import Notification

logger = logging.getLogger(__name__)

# Kept by a push service for a device that is off this long; a run's outcome is stale after that.
TTL_SECONDS = 12 * 3600
TIMEOUT_SECONDS = 10
GONE = {404, 410}  # the push service says the subscription is no more (RFC 8030 7.3)


class WhileSending(logging.Filter):
    """Drops urllib3's records while this thread posts a notification: at DEBUG they name the endpoint's path,
    which is the subscription's secret address."""

    sending = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.sending, "on", False)


logging.getLogger("urllib3").addFilter(WhileSending())
logging.getLogger("urllib3.connectionpool").addFilter(WhileSending())


@contextmanager
def quiet_transport():
    WhileSending.sending.on = True
    try:
        yield
    finally:
        WhileSending.sending.on = False


def no_redirects() -> requests.Session:
    """The endpoint was checked when it was stored; a redirect would take the post somewhere that was not."""
    session = requests.Session()
    session.max_redirects = 0
    return session


def send(subscription: PushSubscription, notification: Notification) -> bool:
    """Posts `notification` to the subscription's push service, encrypted to its browser. A subscription the push
    service says is gone is deleted. True when it was accepted. Logs name the subscription's id and its push
    service's host, never its endpoint's path or keys."""
    try:
        with quiet_transport():
            webpush(
                subscription_info={"endpoint": subscription.endpoint,
                                   "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
                data=notification.encode(),
                vapid_private_key=Vapid.from_raw(settings.VAPID_PRIVATE_KEY.encode()),
                vapid_claims={"sub": settings.VAPID_SUBJECT},
                ttl=TTL_SECONDS, timeout=TIMEOUT_SECONDS, requests_session=no_redirects(),
            )
    except WebPushException as e:
        if e.status_code in GONE:
            logger.info("push subscription %s at %s is gone (%s): deleted", subscription.pk, subscription.device(),
                        e.status_code)
            subscription.delete()
        else:
            logger.warning("push to subscription %s at %s failed: %s", subscription.pk, subscription.device(),
                           e.status_code)
        return False
    except requests.RequestException as e:
        logger.warning("push to subscription %s at %s failed: %s", subscription.pk, subscription.device(),
                       type(e).__name__)
        return False
    return True
