"""What the sessions app tells the apps above it (they connect in their AppConfig.ready)."""

from django.dispatch import Signal

# The agent asked for the session's pull request (its create_pull_request tool), for the person whose prompt it
# worked on. Sent inside the event's transaction: act on commit. Arguments: session, user, title, body, draft.
pull_request_asked = Signal()
