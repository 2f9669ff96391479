from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from notifications.models import PushSubscription
from notifications.wire import BadSubscription, SubscriptionRequest, parse_endpoint, user_agent

MAX_DEVICES = 10  # subscriptions kept per person


def device_settings(request: HttpRequest) -> HttpResponse:
    """The "Notify me on this device" toggle. The browser holds the subscription; the page only asks it."""
    return render(request, "notifications/settings.html", {
        "vapid_public_key": settings.VAPID_PUBLIC_KEY,
        "subscription_count": request.user.push_subscriptions.count(),
    })


def problem(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@require_POST
def subscribe(request: HttpRequest) -> JsonResponse:
    """Stores the browser's subscription for the signed-in person (again: its keys are updated)."""
    if not settings.VAPID_PUBLIC_KEY:
        return problem("Notifications are not set up on this platform (VAPID_PRIVATE_KEY).", 503)
    try:
        wanted = SubscriptionRequest.parse(request.body)
    except BadSubscription as e:
        return problem(str(e))
    fields = {"p256dh": wanted.p256dh, "auth": wanted.auth,
              "user_agent": user_agent(request.headers.get("User-Agent", ""))}
    try:
        with transaction.atomic():
            subscription, created = PushSubscription.objects.get_or_create(
                endpoint=wanted.endpoint, defaults={"user": request.user, **fields})
    except IntegrityError:  # the same endpoint stored at the same moment by another request
        subscription, created = PushSubscription.objects.get(endpoint=wanted.endpoint), False
    if subscription.user_id != request.user.pk:
        # Another person's device (the same browser, signed in as them): it stays theirs until the browser makes
        # a new subscription (subscribe.js does, on this answer); a push service then answers 410 to the old one.
        return problem("This browser's subscription belongs to another account.", 409)
    if not created:
        PushSubscription.objects.filter(pk=subscription.pk).update(**fields)
    else:  # a person's newest devices are told; the oldest beyond the limit are let go (each send is a request)
        mine = PushSubscription.objects.filter(user=request.user).order_by("-created_at", "-pk")
        PushSubscription.objects.filter(pk__in=list(mine.values_list("pk", flat=True)[MAX_DEVICES:])).delete()
    return JsonResponse({"subscribed": True}, status=201 if created else 200)


@require_POST
def unsubscribe(request: HttpRequest) -> JsonResponse:
    """Removes the signed-in person's own subscription: another's, or none, is not found (and not told apart)."""
    try:
        endpoint = parse_endpoint(request.body)
    except BadSubscription as e:
        return problem(str(e))
    deleted, _ = PushSubscription.objects.filter(endpoint=endpoint, user=request.user).delete()
    if not deleted:
        return problem("No such subscription of yours.", 404)
    return JsonResponse({"subscribed": False})
