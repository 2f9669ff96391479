"""What the sessions app tells the apps above it (they connect in their AppConfig.ready)."""

from django.dispatch import Signal

# The agent asked for the session's pull request (its create_pull_request tool), for the person whose prompt it
# worked on. Sent inside the event's transaction: act on commit. Arguments: session, user, title, body, draft.
pull_request_asked = Signal()

# A member started writing a prompt after a pause of TYPING_PAUSE_SECONDS (member_requests.py). Sent after
# commit. Arguments: session, user.
member_typing = Signal()

# A prompt's run ended (done, cancelled or failed): the people who wait for it may be told. Sent after commit.
# Arguments: session, prompt.
run_finished = Signal()

# The agent reported an error (a bridge `error` event): the person it works for may be needed. Sent inside the
# event's transaction: act on commit. Arguments: session, error (its name and message, as session.error has it).
agent_error = Signal()
